"""8. The command line fails cleanly, in one line, and never trains for nothing."""

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_distill import cli
from tests.conftest import BACKEND
from tests.conftest import make_pair

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "keras_distill", *args, "--backend", BACKEND],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture
def models(tmp_path):
    student, teacher = make_pair()
    teacher.save(tmp_path / "teacher.keras")
    student.save(tmp_path / "student.keras")
    return ["--teacher", str(tmp_path / "teacher.keras"), "--student", str(tmp_path / "student.keras")]


def _refused(result, message):
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "Epoch" not in result.stdout  # nothing trained


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--epochs", "0"], "argument --epochs: must be an int >= 1. Received: 0"),
        (["--epochs", "-3"], "argument --epochs: must be an int >= 1. Received: -3"),
        (["--batch-size", "0"], "argument --batch-size: must be an int >= 1. Received: 0"),
        (["--tune", "1"], "argument --tune: must be an int >= 2. Received: 1"),
    ],
)
def test_numbers_that_train_nothing_are_refused(tmp_path, models, arguments, message):
    _refused(run("distill", *models, "--data", "digits", "--output", str(tmp_path / "out"), *arguments), message)
    assert not (tmp_path / "out").exists()


def test_bad_files_are_refused_before_training(tmp_path, models):
    np.savez(
        tmp_path / "data.npz",
        x_train=np.zeros((8, 64), "float32"),
        y_train=np.arange(8),
        x_test=np.zeros((4, 64), "float32"),
        y_test=np.arange(4),
    )
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "data.npz").read_bytes()[:100])
    _refused(
        run("distill", *models, "--data", str(truncated), "--output", str(tmp_path / "out")),
        "cannot be read as a .npz file",
    )
    existing = tmp_path / "a_file"
    existing.write_text("not a directory")
    _refused(
        run("distill", *models, "--data", str(tmp_path / "data.npz"), "--output", str(existing)),
        "is an existing file; the results need a directory",
    )
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"\x00" * 64)
    _refused(
        run(
            "distill",
            "--teacher",
            str(garbage),
            "--student",
            models[3],
            "--data",
            str(tmp_path / "data.npz"),
            "--output",
            str(tmp_path / "out"),
        ),
        "is not a Keras model file",
    )
    one_hot = tmp_path / "one_hot.npz"
    np.savez(
        one_hot,
        x_train=np.zeros((20, 64), "float32"),
        y_train=np.eye(10)[np.arange(20) % 10],
        x_test=np.zeros((4, 64), "float32"),
        y_test=np.arange(4),
    )
    _refused(run("distill", *models, "--data", str(one_hot), "--output", str(tmp_path / "out")), "look one-hot")


def test_main_called_from_python_keeps_the_callers_process(tmp_path):
    other = "tensorflow" if BACKEND != "tensorflow" else "torch"
    # The command runs in a child process with the arguments given, whatever
    # sys.argv says, and its exit code comes back.
    saved = sys.argv
    sys.argv = ["pytest", "something", "else"]
    try:
        assert (
            cli.main(
                [
                    "distill",
                    "--teacher",
                    "missing.keras",
                    "--student",
                    "missing.keras",
                    "--data",
                    "digits",
                    "--output",
                    str(tmp_path / "out"),
                    "--backend",
                    other,
                ]
            )
            == 2
        )
    finally:
        sys.argv = saved


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--epochs", "0"], "argument --epochs: must be an int >= 1. Received: 0"),
        (["--tune", "1"], "argument --tune: must be an int >= 2. Received: 1"),
        (["--batch-size", "-2"], "argument --batch-size: must be an int >= 1. Received: -2"),
    ],
)
def test_the_demo_refuses_numbers_that_train_nothing(tmp_path, arguments, message):
    result = subprocess.run(
        [sys.executable, os.path.join("examples", "demo.py"), "--quick", "--output", str(tmp_path / "out"), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    _refused(result, message)
    assert not (tmp_path / "out").exists()


def test_an_output_that_cannot_be_written_is_refused_before_loading(models, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run("distill", *models, "--data", "digits", "--epochs", "1", "--output", str(blocker / "out"))
    _refused(result, "is not a writable directory")


def test_a_rerun_leaves_no_export_of_the_previous_run(models, tmp_path):
    output = tmp_path / "out"
    stale = output / "deploy" / "student_int8_recovered.onnx"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an export of an earlier run")
    result = run("distill", *models, "--data", "digits", "--epochs", "1", "--output", str(output))
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (output / "deploy").exists()
    assert (output / "student.keras").exists()
