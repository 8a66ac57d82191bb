import os

import numpy as np
import pytest

import keras_distill as kd
from keras_distill import export as export_module
from keras_distill.export import ExportMismatchError
from keras_distill.export import export
from keras_distill.export import export_saved_model
from tests.conftest import make_mlp

RUNTIMES = {"tf_saved_model": "tensorflow", "onnx": "onnxruntime", "litert": "ai_edge_litert"}


def _inputs(count=16):
    return np.random.default_rng(0).uniform(size=(count, 64)).astype("float32")


@pytest.mark.parametrize("format", ["tf_saved_model", "onnx", "litert"])
def test_each_format_computes_what_the_model_computes(tmp_path, format):
    pytest.importorskip(
        RUNTIMES[format], reason=f"{format} needs {RUNTIMES[format]}: pip install keras-distill[export]"
    )
    student = make_mlp(8, name="student")
    report = export(student, os.path.join(tmp_path, "student"), format=format, sample_inputs=_inputs(), latency_runs=5)
    assert os.path.exists(report.path)
    assert report.format == format and report.examples == 16
    assert report.max_difference <= report.tolerance == 1e-4
    assert report.size_bytes > 0 and report.latency_ms > 0


def test_a_mismatching_artifact_is_an_error_naming_format_difference_and_input(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    real_runner = export_module._runner

    def perturbed(format, path, runtime):
        run = real_runner(format, path, runtime)

        def wrong(x):
            outputs = np.array(run(x))
            if len(outputs) == 16:
                outputs[5, 3] += 0.25
            return outputs

        return wrong

    monkeypatch.setattr(export_module, "_runner", perturbed)
    with pytest.raises(ExportMismatchError, match=r"onnx artifact .* differ by up to 0\.25 .*sample input 5 of 16"):
        export(make_mlp(8, name="student"), os.path.join(tmp_path, "student"), format="onnx", sample_inputs=_inputs())


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_a_quantized_student_exports_to_onnx_and_is_checked(tmp_path, mode):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    student = kd.quantize_student(make_mlp(8, name="student"), mode=mode, method="ptq")
    report = export(student, os.path.join(tmp_path, "student"), format="onnx", sample_inputs=_inputs(), latency_runs=5)
    assert report.max_difference <= 1e-4


def test_litert_refuses_keras_quantized_layers_and_quantizes_itself(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install keras-distill[export]")
    student = make_mlp(256, name="student")
    quantized = kd.quantize_student(student, mode="int8", method="ptq")
    with pytest.raises(ValueError, match=r"TFLite converter cannot convert.*litert_int8=True"):
        export(quantized, os.path.join(tmp_path, "q"), format="litert")
    float_report = export(
        student, os.path.join(tmp_path, "float"), format="litert", sample_inputs=_inputs(), latency_runs=5
    )
    int8_report = export(
        student,
        os.path.join(tmp_path, "int8"),
        format="litert",
        sample_inputs=_inputs(),
        litert_int8=True,
        latency_runs=5,
    )
    assert int8_report.size_bytes < 0.5 * float_report.size_bytes
    assert int8_report.max_difference <= int8_report.tolerance
    assert int8_report.tolerance >= 0.02 and int8_report.max_difference > 1e-6  # rounded, within 2% of the logits


def test_saved_model_serves_the_same_predictions(tmp_path):
    tf = pytest.importorskip("tensorflow")
    student = make_mlp(8, name="student")
    path = export_saved_model(student, os.path.join(tmp_path, "saved"))
    x = _inputs(5)
    loaded = tf.saved_model.load(path)  # kept alive: serve() needs its variables
    np.testing.assert_allclose(loaded.serve(x).numpy(), student.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"model": "student.keras"}, TypeError, "`model` must be a keras.Model"),
        ({"latency_runs": 0}, ValueError, "`latency_runs` must be a positive int"),
        ({"tolerance": -1}, ValueError, "`tolerance` must be a finite number >= 0"),
        ({"sample_inputs": np.full((2, 64), np.nan, "float32")}, ValueError, "128 NaN or infinite"),
        ({"sample_inputs": np.zeros((0, 64), "float32")}, ValueError, "`sample_inputs` is empty"),
        ({"sample_inputs": object()}, TypeError, "`sample_inputs` must be an array"),
        ({"path": "."}, ValueError, "is a directory, but a onnx export is one file"),
    ],
)
def test_export_arguments_are_refused_before_any_work(tmp_path, monkeypatch, kwargs, error, match):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    monkeypatch.chdir(tmp_path)
    arguments = {"model": make_mlp(8, name="student"), "path": "student", "format": "onnx", **kwargs}
    with pytest.raises(error, match=match):
        export(**arguments)
    assert os.listdir(tmp_path) == []


def test_an_unwritable_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    # The suite runs as root, for whom every directory is writable: the
    # permission check itself is what is replaced.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="is not writable"):
        export(make_mlp(8, name="student"), os.path.join(tmp_path, "student"), format="onnx")


def test_an_integer_input_model_needs_its_sample_inputs(tmp_path):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    import keras

    ids = keras.Input((5,), dtype="int32")
    model = keras.Model(ids, keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Embedding(10, 4)(ids))))
    with pytest.raises(ValueError, match="random inputs would all round to 0"):
        export(model, os.path.join(tmp_path, "ids"), format="onnx")
    sample = np.random.default_rng(0).integers(0, 10, (16, 5))
    report = export(model, os.path.join(tmp_path, "ids"), format="onnx", sample_inputs=sample, latency_runs=2)
    assert report.max_difference <= report.tolerance


def test_a_lambda_layer_exports_through_the_tensorflow_process(tmp_path):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    import keras

    model = keras.Sequential([keras.Input((64,)), keras.layers.Lambda(lambda x: 2.0 * x), keras.layers.Dense(3)])
    report = export(model, os.path.join(tmp_path, "lambda"), format="onnx", sample_inputs=_inputs(), latency_runs=2)
    assert report.max_difference <= report.tolerance


def test_a_failed_tensorflow_process_names_its_own_cause(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    import keras

    if keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow exports natively")
    monkeypatch.setattr(export_module, "NATIVE", {"jax": set(), "torch": set()})
    original = export_module.subprocess.run

    def failing(command, **kwargs):
        return original([command[0], "-c", "raise OSError('[Errno 30] Read-only file system: x.onnx')"], **kwargs)

    monkeypatch.setattr(export_module.subprocess, "run", failing)
    with pytest.raises(RuntimeError, match=r"failed: OSError: \[Errno 30\] Read-only file system") as raised:
        export(make_mlp(8, name="student"), os.path.join(tmp_path, "student"), format="onnx")
    assert "pip install tensorflow-cpu" not in str(raised.value)


def test_a_failed_native_export_is_reported_beside_the_tensorflow_process(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("PyTorch exports ONNX natively and falls back to the TensorFlow process")
    student = make_mlp(8, name="student")

    def failing_export(*args, **kwargs):
        raise RuntimeError("the native exporter cannot trace this model")

    monkeypatch.setattr(student, "export", failing_export)
    original = export_module.subprocess.run
    monkeypatch.setattr(
        export_module.subprocess,
        "run",
        lambda command, **kwargs: original([command[0], "-c", "raise SystemExit('no graph')"], **kwargs),
    )
    with pytest.raises(RuntimeError, match="Keras' own torch export failed first: RuntimeError: the native exporter"):
        export(student, os.path.join(tmp_path, "student"), format="onnx")
