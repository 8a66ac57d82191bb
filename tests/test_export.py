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
