"""6. Non-finite data is caught, and a NaN student is never saved."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import BACKEND
from tests.conftest import make_pair

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_one_nan_pixel_is_refused_before_training(digits):
    (x, y), _ = digits
    x = x[:64].copy()
    x[5, 7] = np.nan
    student, teacher = make_pair()
    before = [w.copy() for w in student.get_weights()]
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE)
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\) \(first at index \(5, 7\)\)"):
        distiller.fit(x, y[:64], verbose=0)
    for a, b in zip(before, student.get_weights()):
        np.testing.assert_array_equal(a, b)
    tf = pytest.importorskip("tensorflow")
    with pytest.raises(ValueError, match="NaN or infinite"):
        distiller.fit(tf.data.Dataset.from_tensor_slices((x, y[:64])).batch(16), verbose=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        kd.precompute_teacher_outputs(teacher, x)


def test_the_command_line_refuses_a_nan_in_its_data_and_saves_nothing(tmp_path):
    student, teacher = make_pair()
    teacher.save(tmp_path / "teacher.keras")
    student.save(tmp_path / "student.keras")
    rng = np.random.default_rng(0)
    x = rng.random((64, 64)).astype("float32")
    x[3, 3] = np.nan
    np.savez(tmp_path / "data.npz", x_train=x, y_train=np.arange(64) % 10, x_test=x[:8] * 0, y_test=np.arange(8))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_distill",
            "distill",
            "--teacher",
            str(tmp_path / "teacher.keras"),
            "--student",
            str(tmp_path / "student.keras"),
            "--data",
            str(tmp_path / "data.npz"),
            "--output",
            str(tmp_path / "out"),
            "--backend",
            BACKEND,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "NaN or infinite" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "student.keras").exists()


def test_a_student_with_nan_weights_is_not_saved(tmp_path):
    from keras_distill import distill_command as jobs

    student, _ = make_pair()
    weights = student.get_weights()
    weights[0][0, 0] = np.nan
    student.set_weights(weights)
    with pytest.raises(ValueError, match="NaN or infinite weights.*not saved"):
        jobs.save_results([{"model": "student", "test errors": 1}], student, str(tmp_path / "out"), "title")
    assert not (tmp_path / "out" / "student.keras").exists()


def test_fit_hints_refuses_what_fit_refuses(digits):
    (x, _), _ = digits
    x = x[:64].copy()
    x[3, 5] = np.nan
    student, teacher = make_pair()
    before = student.get_weights()
    distiller = kd.HintDistiller(
        student=student, teacher=teacher, hint_layer="teacher_hidden", guided_layer="student_hidden"
    )
    with pytest.raises(ValueError, match=r"contain 1 NaN or infinite value\(s\) \(first at index \(3, 5\)\)"):
        distiller.fit_hints(x, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, student.get_weights()))


def test_a_lambda_distillation_loss_trains_and_leaves_the_process_working(digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="sgd", loss=SCCE, distillation_loss=lambda p_t, p_s: keras.ops.sum(keras.ops.square(p_t - p_s), -1)
    )
    assert distiller.fit(x, y, epochs=1, verbose=0).history["distillation_loss"][0] >= 0
    # TensorFlow once kept the refused "<lambda>" name scope open: every later fit failed.
    plain = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    plain.compile(optimizer="sgd", loss=SCCE)
    assert np.isfinite(plain.fit(x, y, epochs=1, verbose=0).history["loss"][0])
