"""Trained teachers on disk, so that a teacher is trained once per machine.

The demo, the reproductions and the benchmarks train the same teachers
again and again; a CNN teacher costs minutes on two CPU cores. `trained`
returns the model trained by `fit`, from disk when a model with the same
key was trained before. The key is the architecture (its config, layer
names aside), the Keras backend and what the caller says determines the
weights (data, epochs, seed, optimizer). Files live under the Keras cache
directory, `~/.keras/keras_distill/teachers` (`$KERAS_HOME` moves it), or in
`$KERAS_DISTILL_TEACHERS`, or the `directory` given.
"""

import hashlib
import json
import os
import re
import time
import warnings

import keras
import numpy as np

ENVIRONMENT = "KERAS_DISTILL_TEACHERS"


def default_directory():
    """`$KERAS_DISTILL_TEACHERS`, else `<Keras cache>/keras_distill/teachers`."""
    if os.environ.get(ENVIRONMENT):
        return os.environ[ENVIRONMENT]
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(keras_home, "keras_distill", "teachers")


def _architecture(config):
    """A model config without names, which Keras numbers per process."""
    if isinstance(config, dict):
        return {k: _architecture(v) for k, v in config.items() if k not in ("name", "build_config")}
    if isinstance(config, list):
        return [_architecture(v) for v in config]
    return config


def _describe(value):
    """A JSON-able stand-in for `value`: arrays by a digest of their bytes
    (`str` of a large array elides its middle, so two arrays could share a
    key), anything else by `str`."""
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        array = np.ascontiguousarray(np.asarray(value))
        content = hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()
        return f"array {array.dtype}{list(array.shape)} sha256:{content}"
    return str(value)


def key_of(model, key):
    """The full key of `model` trained as `key` says, and its digest."""
    architecture = json.dumps(_architecture(model.get_config()), sort_keys=True, default=_describe)
    full = {
        "architecture": hashlib.sha256(architecture.encode()).hexdigest()[:16],
        "backend": keras.backend.backend(),
        **json.loads(json.dumps(key, sort_keys=True, default=_describe)),
    }
    digest = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]
    return full, digest


def _file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def trained(name, build, fit, *, key, directory=None):
    """A model built by `build()` and trained by `fit(model)`, or loaded.

    Args:
        name: A readable file name prefix, e.g. `"cnn_teacher"`.
        build: A function returning a new (compiled) model.
        fit: A function training that model in place.
        key: dict of what determines the trained weights besides the
            architecture and backend: data, epochs, seed, optimizer...
        directory: Where the models live. Defaults to `default_directory()`.

    Returns:
        `(model, record)`: the model built by `build()` with the trained
        weights, and a dict with the key, `"seconds"` (the training time,
        measured when it was trained) and `"loaded"` (whether it came from
        disk).
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(
            f"A stored teacher's name is a file name prefix: letters, digits, '_', '.' and '-'. Received: "
            f"name={name!r}. Use e.g. name='cnn_teacher'."
        )
    model = build()
    full_key, digest = key_of(model, key)
    directory = directory or default_directory()
    path = os.path.join(directory, f"{name}-{digest}.weights.h5")
    record_path = os.path.join(directory, f"{name}-{digest}.json")
    if os.path.exists(path) and os.path.exists(record_path):
        try:
            optimizer = getattr(model, "optimizer", None)
            if optimizer is not None and not optimizer.built:
                # Slots first, so that the saved optimizer state loads.
                optimizer.build(model.trainable_variables)
            with open(record_path) as f:
                record = json.load(f)
            if record.get("sha256") != _file_digest(path):
                raise ValueError("its checksum does not match the one recorded when it was stored")
            model.load_weights(path)
            return model, {**record, "loaded": True}
        except Exception as error:  # a truncated or foreign file: train again
            warnings.warn(f"Could not load the stored {name} from {path} ({error}); training it again.", stacklevel=2)
            model = build()
    start = time.perf_counter()
    fit(model)
    record = {
        "name": name,
        "key": full_key,
        "seconds": time.perf_counter() - start,
        "trained": time.strftime("%Y-%m-%d %H:%M"),
    }
    os.makedirs(directory, exist_ok=True)
    # Written under a temporary name and renamed, so that an interrupted
    # run never leaves a half-written model to be loaded later.
    temporary = f"{path}.{os.getpid()}.tmp.weights.h5"
    model.save_weights(temporary)
    record["sha256"] = _file_digest(temporary)
    os.replace(temporary, path)
    with open(f"{record_path}.{os.getpid()}.tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(f"{record_path}.{os.getpid()}.tmp", record_path)
    return model, {**record, "loaded": False}
