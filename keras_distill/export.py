"""Exports a student for serving, and proves the artifact computes what the
Keras model computes.

`export(model, path, format=...)` writes a TensorFlow SavedModel, an ONNX
file or a LiteRT (`.tflite`) file with Keras' own `model.export`, then loads
the artifact in its own runtime (TensorFlow, `onnxruntime`, the LiteRT
interpreter of `ai-edge-litert`), runs it on sample inputs, compares with the
Keras model and measures the file size and the latency of one example. A
mismatch raises `ExportMismatchError`, naming the format, the largest
difference and the inputs.

Keras exports every format from the TensorFlow backend; JAX exports only
SavedModels and PyTorch only ONNX here (its SavedModel export fails with
torch 2.13, its LiteRT export needs `litert-torch`). The other combinations
go through a `.keras` file and a TensorFlow-backend subprocess, which builds
the same graph.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import keras
import numpy as np

from keras_distill import _compat
from keras_distill._validate import check_choice
from keras_distill._validate import check_int
from keras_distill._validate import check_number

FORMATS = ("tf_saved_model", "onnx", "litert")
# What Keras exports natively on each backend, as measured with Keras 3.15.1.
NATIVE = {
    "tensorflow": {"tf_saved_model", "onnx", "litert"},
    "jax": {"tf_saved_model"},
    "torch": {"onnx"},
}
SUFFIXES = {"tf_saved_model": "", "onnx": ".onnx", "litert": ".tflite"}
# A float32 artifact matches to rounding; quantized graphs may round
# differently in another runtime.
DEFAULT_TOLERANCE = 1e-4
# The converter's int8 weights against the float model's, as a fraction of
# the model's largest output magnitude (at least 1): measured 0.01-0.02
# logits on small students, 0.16 on a 784-800-800-10 student whose logits
# reach 25.
LITERT_INT8_TOLERANCE = 0.02
_RUNTIMES = {
    "tf_saved_model": ("tensorflow", "pip install tensorflow-cpu"),
    "onnx": ("onnxruntime", "pip install onnxruntime (and onnx, tf2onnx)"),
    "litert": ("ai_edge_litert", "pip install ai-edge-litert"),
}


class ExportMismatchError(ValueError):
    """The exported artifact does not compute what the Keras model computes."""


@dataclasses.dataclass
class ExportReport:
    """What `export` wrote and measured.

    Attributes:
        format: `"tf_saved_model"`, `"onnx"` or `"litert"`.
        path: The artifact (a directory for a SavedModel).
        size_bytes: Its size on disk.
        max_difference: The largest absolute difference between the
            artifact's outputs and the Keras model's on the sample inputs.
        tolerance: The largest difference allowed.
        latency_ms: Median time of one example in the artifact's runtime.
        examples: How many sample inputs were compared.
        via_tensorflow: Whether a TensorFlow-backend subprocess exported it.
    """

    format: str
    path: str
    size_bytes: int
    max_difference: float
    tolerance: float
    latency_ms: float
    examples: int
    via_tensorflow: bool


def export(
    model, path, format="tf_saved_model", *, sample_inputs=None, tolerance=None, litert_int8=False, latency_runs=50
):
    """Exports `model` to `path` and checks the artifact against it.

    Args:
        model: A `keras.Model` of one input and one output tensor (a
            distilled student: `distiller.student`, not the distiller).
        path: Where to write the artifact; `.onnx` / `.tflite` are added
            when missing, and missing directories are created.
        format: `"tf_saved_model"`, `"onnx"` or `"litert"`.
        sample_inputs: Inputs to compare on, e.g. a slice of the test data.
            Defaults to 8 random inputs of the model's input shape.
        tolerance: The largest absolute difference allowed between the
            artifact's outputs and the model's. Defaults to 1e-4, or
            `LITERT_INT8_TOLERANCE` with `litert_int8`.
        litert_int8: With `format="litert"`, let the TFLite converter store
            the weights in int8 (`tf.lite.Optimize.DEFAULT`, dynamic range).
            The converter cannot convert layers that Keras itself quantized
            (`model.quantize`), so a phone gets its int8 model this way,
            from the float (or quantization-aware trained) student.
        latency_runs: Single-example runs timed (the median is reported).

    Returns:
        An `ExportReport`.

    Raises:
        ExportMismatchError: The artifact's outputs differ by more than
            `tolerance`.
        ImportError: The format's runtime is not installed.
        TypeError, ValueError, PermissionError: Before any work, for
            arguments it cannot use: a `model` that is not a `keras.Model`
            (or is a distiller: export its student), a model of several
            inputs or outputs, `latency_runs` < 1, `tolerance` < 0, empty
            or non-finite `sample_inputs`, a `path` it cannot write (a
            directory for a one-file format, an unwritable directory), and a
            model with integer inputs given no `sample_inputs`.

    Examples:

    ```python
    report = keras_distill.export.export(student, "student.tflite", format="litert",
                                         sample_inputs=x_test[:64])
    print(report.size_bytes, report.latency_ms, report.max_difference)
    ```
    """
    format = check_choice(format, "format", FORMATS)
    _check_model(model)
    latency_runs = check_int(latency_runs, "latency_runs", example=50, at_least=1)
    if tolerance is not None:
        tolerance = check_number(tolerance, "tolerance", example=1e-4, at_least=0.0)
    runtime = _import_runtime(format)
    if litert_int8 and format != "litert":
        raise ValueError(f"`litert_int8` applies to format='litert'. Received: format={format!r}.")
    quantized = quantized_layers(model)
    if quantized and format == "litert":
        raise ValueError(
            f"{model.name!r} has layers quantized by Keras ({', '.join(quantized[:4])}), which the TFLite "
            "converter cannot convert (TF 2.21: \"'tfl.fully_connected' op operand #0 must be tensor of 32-bit "
            'float or QI8 ..."). Export the float student with litert_int8=True: the converter stores its '
            "weights in int8 itself."
        )
    options = {"int8": True} if litert_int8 else {}
    given = str(path)
    if SUFFIXES[format] and not str(path).endswith(SUFFIXES[format]):
        path = f"{path}{SUFFIXES[format]}"
    path = str(path)
    parent = _check_path(given, path, format)
    inputs = _sample_inputs(model, sample_inputs)
    os.makedirs(parent, exist_ok=True)
    expected = np.asarray(keras.ops.convert_to_numpy(model(inputs, training=False)), dtype="float32")
    if tolerance is None:
        scale = max(1.0, float(np.max(np.abs(expected))))
        tolerance = LITERT_INT8_TOLERANCE * scale if litert_int8 else DEFAULT_TOLERANCE
    via_tensorflow = format not in NATIVE.get(keras.backend.backend(), set())
    native_error = None
    if not via_tensorflow:
        try:
            with warnings.catch_warnings():
                # Keras' ONNX exporter reads `np.object`, which NumPy 2 flags,
                # and on torch traces the model, which warns about constants
                # that an inference graph is meant to hold.
                warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
                warnings.filterwarnings("ignore", message=".*(trace|as_tensor).*")
                model.export(path, format=format, verbose=False, **_converter_options(options))
        except Exception as error:
            if keras.backend.backend() == "tensorflow":
                raise
            via_tensorflow = True  # e.g. PyTorch's ONNX export of int8 layers
            native_error = error
    if via_tensorflow:
        _export_in_tensorflow(model, path, format, options, native_error)
    run = _runner(format, path, runtime)
    outputs = np.asarray(run(inputs), dtype="float32")
    difference = float(np.max(np.abs(outputs - expected))) if outputs.shape == expected.shape else float("inf")
    if not difference <= tolerance:
        where = (
            int(np.argmax(np.max(np.abs(outputs - expected).reshape(len(inputs), -1), axis=1)))
            if outputs.shape == expected.shape
            else None
        )
        raise ExportMismatchError(
            f"The {format} artifact {path} does not compute what the Keras model computes: its outputs "
            f"differ by up to {difference:.3g} (allowed: {tolerance:g})"
            + (
                f", most on sample input {where} of {len(inputs)}"
                if where is not None
                else f"; it returns shape {outputs.shape} where the model returns {expected.shape}"
            )
            + ". The artifact was left for inspection; do not serve it. If the model is quantized, a "
            "runtime may round differently: raise `tolerance` only after checking the accuracy."
        )
    latency = _latency(run, inputs[:1], latency_runs)
    return ExportReport(format, path, _size(path), difference, tolerance, latency, len(inputs), via_tensorflow)


def load_artifact(path, format):
    """The artifact at `path` as a function of a NumPy batch, run in its
    format's runtime (TensorFlow, `onnxruntime` or the LiteRT interpreter),
    e.g. to measure its test accuracy."""
    format = check_choice(format, "format", FORMATS)
    return _runner(format, str(path), _import_runtime(format))


def quantized_layers(model):
    """Paths of the layers of `model` that Keras quantized (`model.quantize`)."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            found += [f"{layer.name}/{name}" for name in quantized_layers(layer)]
        elif getattr(getattr(layer, "dtype_policy", None), "quantization_mode", None):
            found.append(layer.name)
    return found


def _converter_options(options):
    if not options.get("int8"):
        return {}
    import tensorflow as tf

    return {"optimizations": [tf.lite.Optimize.DEFAULT]}


def export_saved_model(model, path):
    """Writes `model` as a SavedModel (an inference `serve` endpoint) to
    `path`, checked against the model; returns `path`."""
    return export(model, path, format="tf_saved_model").path


def _import_runtime(format):
    module, install = _RUNTIMES[format]
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(
            f"Checking a {format} export needs `{module}`, which is not installed: {install} "
            "(or `pip install keras-distill[export]`)."
        ) from error


def _check_model(model):
    """One Keras model of one input and one output tensor, which every
    format serves and every runtime here can compare."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model={model!r} (of type {type(model).__name__}). "
            "Load a saved model first: export(keras.saving.load_model(path), ...)."
        )
    if type(model).__module__.startswith("keras_distill."):
        part = "distiller.models[0] (each peer is a model)" if hasattr(model, "peers") else "distiller.student"
        raise TypeError(
            f"`model` is a {type(model).__name__}, which trains models but is not one to serve: an artifact "
            f"needs the distilled model alone, and a serving runtime would not know the class. Export {part}."
        )
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) > 1:
        raise ValueError(
            f"export() writes and checks models of one input; {model.name!r} has {len(inputs)} "
            f"({', '.join(getattr(tensor, 'name', '?') for tensor in inputs)}). Use Keras' own "
            "model.export(path, format=...), which writes several inputs without this check, or give the model "
            "one input (e.g. one array that a first layer splits)."
        )
    try:
        output = model.output
    except (AttributeError, ValueError):
        output = None
    if isinstance(output, (dict, list, tuple)):
        names = list(output) if isinstance(output, dict) else list(range(len(output)))
        raise ValueError(
            f"export() writes and checks models of one output tensor; {model.name!r} returns a "
            f"{type(output).__name__} of outputs {names}. Export each output as its own model, e.g. "
            f"export(keras.Model(model.input, model.output[{names[0]!r}]), ...)."
        )


def _check_path(given, path, format):
    """Refuses a path the export cannot write, before any work: `given` as
    the caller passed it, `path` with the format's suffix added."""
    directory = next((name for name in (given, path) if os.path.isdir(name)), None)
    if format != "tf_saved_model" and directory is not None:
        raise ValueError(
            f"`path` is a directory, but a {format} export is one file. Received: path={directory!r}. Pass a "
            f"file name, e.g. {os.path.join(directory, 'student' + SUFFIXES[format])!r}."
        )
    if format == "tf_saved_model" and os.path.isfile(path):
        raise ValueError(
            f"`path` is a file, but a SavedModel is a directory. Received: path={path!r}. Pass a directory name."
        )
    parent = os.path.dirname(os.path.abspath(path))
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{existing!r} is a file, so {path!r} cannot be written. Choose another path.")
    if not os.access(existing, os.W_OK):
        raise PermissionError(
            f"Cannot write the {format} export to {path!r}: the directory {existing!r} is not writable. "
            "Choose a writable path."
        )
    return parent


def _sample_inputs(model, sample_inputs):
    input_dtype = _input_dtype(model)
    if sample_inputs is not None:
        if not isinstance(sample_inputs, (np.ndarray, list, tuple)) and not hasattr(sample_inputs, "__array__"):
            raise TypeError(
                f"`sample_inputs` must be an array of inputs. Received an object of type "
                f"{type(sample_inputs).__name__}. Pass a NumPy array, e.g. sample_inputs=x_test[:32] (for a "
                "tf.data dataset: sample_inputs=next(iter(dataset))[0].numpy())."
            )
        inputs = np.asarray(sample_inputs)
        if inputs.ndim == 0 or len(inputs) == 0:
            raise ValueError(
                f"`sample_inputs` is empty (shape {inputs.shape}). Pass at least one example, e.g. "
                "sample_inputs=x_test[:32]."
            )
        if inputs.dtype.kind == "f" and not np.all(np.isfinite(inputs)):
            raise ValueError(
                f"`sample_inputs` holds {int(np.sum(~np.isfinite(inputs)))} NaN or infinite value(s): the "
                "comparison with the artifact would fail on them, not on the export. Pass finite inputs."
            )
        return inputs.astype(input_dtype or "float32")
    if not getattr(model, "inputs", None) or len(model.inputs) != 1:
        raise ValueError(
            f"Pass `sample_inputs` to export {model.name!r}: its input shape is not known (or it has several "
            "inputs). Use e.g. sample_inputs=x_test[:32]."
        )
    if input_dtype is not None and np.dtype(input_dtype).kind in "iub":
        raise ValueError(
            f"Pass `sample_inputs` to export {model.name!r}: it takes {input_dtype} inputs (token or class "
            "ids), and random inputs would all round to 0, so the check would compare one input. Use e.g. "
            "sample_inputs=x_test[:32]."
        )
    shape = tuple(8 if dim is None else dim for dim in model.inputs[0].shape)
    return np.random.default_rng(0).uniform(size=shape).astype("float32")


def _input_dtype(model):
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        return None
    return getattr(inputs[0], "dtype", None)


def _export_in_tensorflow(model, path, format, options, native_error=None):
    """Exports through a `.keras` file in a TensorFlow-backend process.

    The file is written here and read there at once, so it is loaded with
    `safe_mode=False`: a Lambda layer of the user's own model loads too. The
    modules that define the model's own classes are imported there first,
    from this process's `sys.path`, so that their registrations hold."""
    modules = _custom_modules(model)
    with tempfile.TemporaryDirectory() as directory:
        keras_file = os.path.join(directory, "model.keras")
        model.save(keras_file)
        # A loaded model has never been called, which Keras' ONNX export
        # refuses: one call on zeros first.
        code = (
            "import importlib, json, sys, keras, numpy as np\n"
            "for module in json.loads(sys.argv[5]):\n"
            "    importlib.import_module(module)\n"
            "model = keras.saving.load_model(sys.argv[1], safe_mode=False)\n"
            "model(np.zeros([1 if d is None else d for d in model.inputs[0].shape], 'float32'))\n"
            "options = json.loads(sys.argv[4])\n"
            "if options.pop('int8', False):\n"
            "    import tensorflow as tf\n"
            "    options['optimizations'] = [tf.lite.Optimize.DEFAULT]\n"
            "model.export(sys.argv[2], format=sys.argv[3], verbose=False, **options)\n"
        )
        importable = [module for module in modules if module != "__main__"]
        result = subprocess.run(
            [sys.executable, "-c", code, keras_file, path, format, json.dumps(options), json.dumps(importable)],
            env={
                **os.environ,
                "KERAS_BACKEND": "tensorflow",
                "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
            },
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
            cause = lines[-1] if lines else f"exit status {result.returncode}"
            if "No module named 'tensorflow'" in result.stderr:
                fix = "This export needs TensorFlow: pip install tensorflow-cpu."
            elif "Could not locate class" in result.stderr and "__main__" in modules:
                fix = (
                    f"The model uses classes defined in __main__ (a script or a notebook: "
                    f"{', '.join(_custom_classes(model, '__main__'))}), which that process cannot import, "
                    "registered or not. Move them into a module of their own (importable from here), or "
                    f"export from a TensorFlow-backend process that defines them (KERAS_BACKEND=tensorflow)."
                )
            else:
                fix = "The model is unaffected. The last lines of that process:\n" + "\n".join(lines[-12:])
            native = (
                f" Keras' own {keras.backend.backend()} export failed first: {type(native_error).__name__}: "
                f"{str(native_error)[:300]}."
                if native_error is not None
                else ""
            )
            raise RuntimeError(
                f"Exporting {model.name!r} to {format} in a TensorFlow-backend process failed: {cause}.{native} {fix}"
            )


def _custom_classes(model, module=None):
    """The names of the model's own classes (its own and its layers'),
    those of `module` if given, outside Keras, keras-hub and this library."""
    found = []
    for layer in _compat.all_layers(model):
        owner = type(layer).__module__ or ""
        if owner.split(".")[0] in ("keras", "keras_hub", "keras_distill", "builtins"):
            continue
        if module is None or owner == module:
            found.append(f"{owner}.{type(layer).__qualname__}")
    return sorted(set(found))


def _custom_modules(model):
    return sorted({name.rsplit(".", 1)[0] for name in _custom_classes(model)})


def _runner(format, path, runtime):
    """A function running the artifact on a batch of inputs (NumPy in, out)."""
    if format == "tf_saved_model":
        loaded = _quietly(runtime.saved_model.load, path)
        return lambda x: loaded.serve(x).numpy()
    if format == "onnx":
        session = runtime.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    details = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]["index"]

    def run(x):
        if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
            interpreter.resize_tensor_input(details["index"], x.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(details["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(output)

    interpreter.allocate_tensors()
    return run


def _latency(run, example, runs):
    run(example)  # warm-up: compiles, allocates
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(example)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def _quietly(function, *args):
    """`function(*args)` without absl's warnings: loading a SavedModel warns
    ("Importing a function ... with ops with unsaved custom gradients") for
    every Keras model, about gradients that serving never asks for."""
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        return function(*args)
    finally:
        absl_logging.set_verbosity(verbosity)
