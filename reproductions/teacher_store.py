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
import time
import warnings

import keras

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


def key_of(model, key):
    """The full key of `model` trained as `key` says, and its digest."""
    architecture = json.dumps(_architecture(model.get_config()), sort_keys=True, default=str)
    full = {
        "architecture": hashlib.sha256(architecture.encode()).hexdigest()[:16],
        "backend": keras.backend.backend(),
        **key,
    }
    digest = hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return full, digest


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
            model.load_weights(path)
            with open(record_path) as f:
                record = json.load(f)
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
    os.replace(temporary, path)
    with open(f"{record_path}.{os.getpid()}.tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(f"{record_path}.{os.getpid()}.tmp", record_path)
    return model, {**record, "loaded": False}
