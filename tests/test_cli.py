import os
import re
import subprocess
import sys

import keras
import numpy as np

import keras_distill as kd
from tests.conftest import BACKEND
from tests.conftest import make_pair

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(command, *args):
    result = subprocess.run(
        [sys.executable, *command, *args, "--backend", BACKEND],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # No framework warnings through Python (absl's and TensorFlow's loggers,
    # Python warnings from Keras, NumPy or torch). The runtimes' own C++ log
    # lines (TensorFlow's start-up, torch's ONNX exporter) bypass Python.
    python_warning = re.compile(r"^(WARNING:(absl|tensorflow)|\S+\.py:\d+: \w*Warning:)")
    warnings = [line for line in result.stderr.splitlines() if python_warning.match(line)]
    assert not warnings, warnings
    return result.stdout


def run_cli(*args):
    return _run(["-m", "keras_distill"], *args)


def run_demo(*args):
    return _run([os.path.join("examples", "demo.py")], *args)


def table_rows(text):
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model")]


def test_demo_quick(tmp_path):
    output = str(tmp_path / "out")
    stdout = run_demo(
        "--quick", "--tune", "2", "--output", output, "--quantize", "int4", "--recover-epochs", "1", "--export", "onnx"
    )
    assert f"Backend: {BACKEND}." in stdout
    assert "quick mode: a smoke test of the pipeline, not a result" in stdout
    assert "WARNING" not in stdout
    with open(os.path.join(output, "results.md")) as f:
        text = f.read()
    main = text.split("## Deployment")[0]
    rows = [row for row in table_rows(main) if not row.startswith("| trial") and "alpha = 1" not in row]
    names = [row.split("|")[1].strip() for row in rows]
    assert names[:7] == [
        "MLP teacher",
        "student from scratch",
        "distilled student",
        "student from scratch, all labels (reference)",
        "CNN teacher",
        "wide student from scratch",
        "wide student distilled from the CNN",
    ]
    assert names[7].startswith("wide student, tuned")
    for row in rows[:4] + rows[5:8]:
        accuracy = float(row.split("|")[5].strip().rstrip("%"))
        assert 50.0 < accuracy <= 100.0  # ten classes: chance is 10%
    # "vs scratch": the distilled students against the same student from scratch.
    for distilled, scratch in ((2, 1), (6, 5), (7, 5)):
        change = float(rows[distilled].split("|")[6].strip().rstrip("%"))
        errors = [int(rows[i].split("|")[4].replace(",", "")) for i in (distilled, scratch)]
        assert abs(change - 100 * (errors[0] - errors[1]) / errors[1]) < 0.06
    assert "labels only (alpha = 1)" in text and os.path.isdir(os.path.join(output, "tuning", "tune"))
    student = keras.saving.load_model(os.path.join(output, "student.keras"))
    assert student.count_params() == 50890
    assert keras.saving.load_model(os.path.join(output, "student_few_labels.keras")).count_params() == 25450
    assert os.path.exists(os.path.join(output, "student_savedmodel", "saved_model.pb"))
    # --quantize / --export: the tuned student's variants, each exported and measured, in one more table.
    deployment = text[text.index("## Deployment") :]
    variants = [line.split("|")[1].strip() for line in deployment.splitlines() if line.startswith("| ")][1:]
    assert variants == [
        "float32",
        "float32",
        "int4 post-training",
        "int4 post-training",
        "int4 recovered (LoRA + KD)",
        "int4 recovered (LoRA + KD)",
    ]
    assert os.path.exists(os.path.join(output, "deploy", "student_int4_recovered.onnx"))


def test_distill_saved_models(tmp_path):
    student, teacher = make_pair()
    teacher.save(tmp_path / "teacher.keras")
    student.save(tmp_path / "student.keras")
    output = str(tmp_path / "out")
    stdout = run_cli(
        "distill",
        "--teacher",
        str(tmp_path / "teacher.keras"),
        "--student",
        str(tmp_path / "student.keras"),
        "--data",
        "digits",
        "--epochs",
        "2",
        "--output",
        output,
    )
    assert "distilled student" in stdout
    # The same student on the labels alone, the row "vs scratch" compares with.
    header = next(line for line in stdout.splitlines() if line.startswith("| model"))
    column = [cell.strip() for cell in header.split("|")].index("vs scratch")
    rows = {row.split("|")[1].strip(): row.split("|") for row in table_rows(stdout)}
    change = rows["distilled student"][column].strip()
    assert "student on the labels alone" in rows and change.endswith("%"), rows
    distilled = keras.saving.load_model(os.path.join(output, "student.keras"))
    assert not all(np.array_equal(a, b) for a, b in zip(distilled.get_weights(), student.get_weights()))
    stdout = run_cli(
        "distill",
        "--teacher",
        str(tmp_path / "teacher.keras"),
        "--student",
        str(tmp_path / "student.keras"),
        "--data",
        "digits",
        "--epochs",
        "1",
        "--tune",
        "2",
        "--output",
        output,
    )
    assert "tuned student" in stdout and "labels only (alpha = 1)" in stdout


def test_distill_rejects_unknown_data(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_distill",
            "distill",
            "--teacher",
            "t.keras",
            "--student",
            "s.keras",
            "--data",
            "nope.csv",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "keras-distill: error: Unknown --data. Received: 'nope.csv'" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "keras-distill")
    result = subprocess.run([script, "distill", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--teacher" in result.stdout and "--backend" in result.stdout and "Example:" in result.stdout


def test_help_answers_at_once_without_a_backend():
    script = os.path.join(os.path.dirname(sys.executable), "keras-distill")
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    # What makes the help fast is checked, not a time (a timed test fails on
    # a loaded machine): no Keras backend is imported, below.
    for arguments in (["--help"], ["distill", "--help"]):
        result = subprocess.run([script, *arguments], capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
    assert "Example: keras-distill distill" in result.stdout
    assert "Epochs of distillation (default 10)" in result.stdout
    assert "Weight of the hard-label loss (default 0.5)" in result.stdout
    assert "Softmax temperature (default 2.0)" in result.stdout
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and result.stdout.strip() == f"keras-distill {kd.__version__}", result.stdout
    # No Keras backend is imported: Python's import log names none.
    imports = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=60, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}
    ).stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if "|" in line}
    assert "argparse" in imported
    assert not imported & {"keras", "tensorflow", "jax", "torch"}, sorted(imported & {"keras", "tensorflow", "jax"})


def test_distill_quantizes_and_exports_with_one_table(tmp_path):
    student, teacher = make_pair()
    teacher.save(tmp_path / "teacher.keras")
    student.save(tmp_path / "student.keras")
    output = str(tmp_path / "out")
    stdout = run_cli(
        "distill",
        "--teacher",
        str(tmp_path / "teacher.keras"),
        "--student",
        str(tmp_path / "student.keras"),
        "--data",
        "digits",
        "--epochs",
        "2",
        "--output",
        output,
        "--quantize",
        "int8",
        "--recover-epochs",
        "1",
        "--export",
        "onnx,litert",
    )
    assert "## Deployment" in stdout
    with open(os.path.join(output, "results.md")) as f:
        text = f.read()
    deployment = text[text.index("## Deployment") :]
    rows = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in deployment.splitlines()
        if line.startswith("| ") and not line.startswith("| student |")
    ]
    assert [(row[0], row[1]) for row in rows] == [
        ("float32", "keras"),
        ("float32", "onnx"),
        ("float32", "litert"),
        ("int8 by the LiteRT converter", "litert"),
        ("int8 post-training", "keras"),
        ("int8 post-training", "onnx"),
        ("int8 recovered (LoRA + KD)", "keras"),
        ("int8 recovered (LoRA + KD)", "onnx"),
    ]
    accuracy = {(row[0], row[1]): float(row[2].rstrip("%")) for row in rows}
    assert all(0.0 <= value <= 100.0 for value in accuracy.values())
    # Each artifact, run in its own runtime on the whole test set, agrees with its Keras model.
    for name, format in accuracy:
        if format != "keras" and (name, "keras") in accuracy:
            assert abs(accuracy[name, format] - accuracy[name, "keras"]) <= 0.6, accuracy
    directory = os.path.join(output, "deploy")
    for name in (
        "student_float32.onnx",
        "student_float32.tflite",
        "student_litert_int8.tflite",
        "student_int8_post_training.keras",
        "student_int8_recovered.onnx",
    ):
        assert os.path.exists(os.path.join(directory, name)), sorted(os.listdir(directory))
    recovered = keras.saving.load_model(os.path.join(directory, "student_int8_recovered.keras"))
    assert {layer.quantization_mode for layer in recovered.layers} == {"int8"}


def test_unknown_export_formats_are_refused_before_training(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_distill",
            "distill",
            "--teacher",
            "t.keras",
            "--student",
            "s.keras",
            "--data",
            "digits",
            "--export",
            "onnx,coreml",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "argument --export: takes a comma-separated list of tf_saved_model, onnx, litert" in result.stderr


def test_the_command_lines_formats_are_the_exporters():
    from keras_distill.cli import EXPORT_FORMATS
    from keras_distill.export import FORMATS

    assert EXPORT_FORMATS == FORMATS
