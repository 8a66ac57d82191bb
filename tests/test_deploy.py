"""`keras_distill.deploy`: the variants of a student and one table of its
artifacts, each measured in its own runtime."""

import os

import numpy as np
import pytest

from keras_distill import deploy
from tests.conftest import make_pair


def test_sizes_read_as_people_write_them():
    assert deploy._size(2_500_000) == "2.50 MB"
    assert deploy._size(12_300) == "12.3 kB"


def test_rows_count_what_the_logits_get_right():
    logits = np.eye(4)[[0, 1, 2, 0]]
    row = deploy._row("float32", "keras", logits, [0, 1, 3, 0], 12_300, 0.25, 3e-7, seconds=0.0)
    assert row["test accuracy"] == pytest.approx(0.75)
    assert row["latency / example"] == "0.250 ms" and row["max abs diff vs Keras"] == "3.0e-07"
    assert row["quantize + recover time"] == "-"


def test_variants_without_quantization_are_the_float_student():
    student, teacher = make_pair()
    assert deploy.variants(student, teacher, None, None, None) == [("float32", student, 0.0)]


def test_deploy_saves_exports_and_measures_every_artifact(digits, tmp_path):
    (x_train, y_train), (x_test, y_test) = digits
    student, teacher = make_pair()
    student.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rows = deploy.deploy(
        deploy.variants(student, teacher, x_train, y_train, None),
        x_test[:100],
        y_test[:100],
        str(tmp_path),
        formats=("onnx",),
        latency_runs=3,
    )
    assert [(row["student"], row["format"]) for row in rows] == [("float32", "keras"), ("float32", "onnx")]
    logits = student.predict(x_test[:100], verbose=0)
    expected = float(np.mean(np.argmax(logits, -1) == y_test[:100]))
    assert rows[0]["test accuracy"] == pytest.approx(expected)
    assert abs(rows[1]["test accuracy"] - expected) <= 0.01
    assert sorted(os.listdir(tmp_path)) == ["student_float32.keras", "student_float32.onnx"]
