"""Exports a trained student as a TensorFlow SavedModel, on any backend."""

import os
import subprocess
import sys
import tempfile

import keras


def export_saved_model(model, path):
    """Writes `model` as a SavedModel (an inference `serve` endpoint) to `path`.

    On TensorFlow and JAX this is `model.export(path)`. On PyTorch, whose
    `model.export` fails with torch 2.13 and Keras 3.15 (a `torch.export`
    dynamic-shapes mismatch), the model goes through a `.keras` file and is
    exported by a TensorFlow-backend subprocess, which gives the same graph.
    TensorFlow must be installed in both cases.
    """
    if keras.backend.backend() != "torch":
        model.export(path, format="tf_saved_model", verbose=False)
        return path
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = os.path.join(tmp, "model.keras")
        model.save(keras_file)
        code = (
            "import sys, keras\n"
            "model = keras.saving.load_model(sys.argv[1])\n"
            "model.export(sys.argv[2], format='tf_saved_model', verbose=False)\n"
        )
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        result = subprocess.run(
            [sys.executable, "-c", code, keras_file, path],
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"Exporting {model.name!r} to a SavedModel failed:\n"
                f"{result.stderr[-2000:]}\nThe `.keras` file is unaffected; "
                "export needs TensorFlow (`pip install tensorflow-cpu`)."
            )
    return path
