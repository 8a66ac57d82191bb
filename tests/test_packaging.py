"""What `pip install` gives a user: the library, and nothing of the
repository's application (reproductions, demo, benchmarks)."""

import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(BACKEND != "jax", reason="the wheel is the same on every backend: built once, on JAX")
def test_the_wheel_holds_the_library_alone_and_runs_the_quickstart(tmp_path):
    # Built from a copy of the tracked tree, so that no build folder is left
    # in the checkout and nothing untracked can slip into the wheel.
    source = tmp_path / "source"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        os.makedirs(source / os.path.dirname(name), exist_ok=True)
        if os.path.isfile(os.path.join(ROOT, name)):
            shutil.copy(os.path.join(ROOT, name), source / name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = os.listdir(tmp_path / "dist")
    names = zipfile.ZipFile(tmp_path / "dist" / wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"keras_distill", "keras_distill-0.1.0.dist-info"}, top
    modules = {name for name in names if name.endswith(".py")}
    assert "keras_distill/distillers/distiller.py" in modules and "keras_distill/cli.py" in modules
    application = [
        name
        for name in modules
        if any(word in name for word in ("experiments", "reproductions", "demo", "jobs", "benchmark", "examples"))
    ]
    assert not application, application

    # The README's quickstart, run from the installed wheel in a folder
    # outside the repository (one epoch each).
    site = tmp_path / "site-packages"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(site),
            str(tmp_path / "dist" / wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    text = open(os.path.join(ROOT, "README.md")).read()
    quickstart = re.search(r"## Quickstart\n.*?```python\n(.*?)```", text, re.S).group(1)
    code = quickstart + "\nprint('FROM', kd.__file__)\n"  # as written: the data is what is made small
    data = tmp_path / "small-fashion-mnist"
    _small_fashion_mnist(data)
    run = tmp_path / "run"
    run.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=run,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(site), "KERAS_DISTILL_DATA": str(data)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"FROM {site}" in result.stdout
    for line in ("teacher, every label: ", "from scratch: ", "distilled: "):
        assert re.search(line + r"\d+\.\d\d% test accuracy", result.stdout), result.stdout
    assert re.search(r"^\d+ s$", result.stdout, re.M), result.stdout
    assert (run / "student.keras").exists()


def _small_fashion_mnist(directory, train=3000, test=500):
    """Fashion-MNIST's four IDX files, cut to `train` and `test` examples,
    in `directory`: what `KERAS_DISTILL_DATA` points the loader at."""
    import gzip
    import struct

    import numpy as np

    import keras_distill as kd

    (x, y), (x_test, y_test) = kd.datasets.load_fashion_mnist()
    directory.mkdir()
    arrays = {
        "train-images-idx3-ubyte.gz": x[:train],
        "train-labels-idx1-ubyte.gz": y[:train],
        "t10k-images-idx3-ubyte.gz": x_test[:test],
        "t10k-labels-idx1-ubyte.gz": y_test[:test],
    }
    for name, array in arrays.items():
        array = np.ascontiguousarray(array, dtype=np.uint8)
        header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
        with gzip.open(directory / name, "wb") as f:
            f.write(header + array.tobytes())


# The distribution of each optional module the package imports (lazily,
# inside the function that needs it), and the extra that must install it for
# each file. Keras' backends come with the `tensorflow`, `jax`, `torch` extras.
DISTRIBUTIONS = {
    "tensorflow": "tensorflow-cpu",
    "absl": "tensorflow-cpu",
    "keras_tuner": "keras-tuner",
    "keras_hub": "keras-hub",
    "ai_edge_litert": "ai-edge-litert",
    "onnxruntime": "onnxruntime",
    "sklearn": "scikit-learn",
    "tensorflow_datasets": "tensorflow-datasets",
}
EXTRA_OF = {
    "keras_distill/export.py": "export",
    "keras_distill/tuning.py": "tune",
    "keras_distill/datasets.py": "data",
    "keras_distill/sequence_data.py": "hub",
    "keras_distill/_training/hub.py": "hub",
    "keras_distill/teacher_cache.py": "tensorflow",
    "keras_distill/_training/step.py": "tensorflow",
    "keras_distill/_compat.py": "tensorflow",
}
STANDARD = {"keras", "numpy", "keras_distill", "torch", "jax"} | set(sys.stdlib_module_names)
# keras-hub requires tensorflow-text, which requires TensorFlow: [hub] has it.
THROUGH = {("hub", "tensorflow-cpu"): "keras-hub"}


def _optional_imports():
    """`{file: {top-level module}}` of the package's imports outside the
    standard library, Keras and NumPy."""
    import ast

    found = {}
    for directory, _, names in os.walk(os.path.join(ROOT, "keras_distill")):
        for name in (name for name in names if name.endswith(".py")):
            path = os.path.join(directory, name)
            for node in ast.walk(ast.parse(open(path).read())):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module]
                for module in modules:
                    top = module.split(".")[0]
                    if top not in STANDARD:
                        found.setdefault(os.path.relpath(path, ROOT), set()).add(top)
    return found


def test_every_extra_installs_what_its_feature_imports():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    extras = {
        extra: {re.split(r"[\[<>=!~ ;]", requirement)[0] for requirement in requirements}
        for extra, requirements in project["optional-dependencies"].items()
    }
    found = _optional_imports()
    assert "keras_distill/export.py" in found and "tensorflow" in found["keras_distill/export.py"]
    missing = []
    for path, modules in sorted(found.items()):
        assert path in EXTRA_OF, f"{path} imports {sorted(modules)}: name the extra that installs them in EXTRA_OF"
        for module in sorted(modules):
            assert module in DISTRIBUTIONS, f"{path} imports {module}: add its distribution to DISTRIBUTIONS"
            extra, distribution = EXTRA_OF[path], DISTRIBUTIONS[module]
            if distribution not in extras[extra] and THROUGH.get((extra, distribution)) not in extras[extra]:
                missing.append(f"{path} imports {module}: [{EXTRA_OF[path]}] lacks {DISTRIBUTIONS[module]}")
    assert not missing, missing
    # The runtimes export() checks its artifacts in, and the TensorFlow that
    # exports every format on JAX and PyTorch.
    assert {"onnx", "onnxruntime", "tf2onnx", "ai-edge-litert", "tensorflow-cpu"} <= extras["export"]
    assert {"keras-tuner", "tensorboard"} <= extras["tune"] and {"keras-hub", "tokenizers"} <= extras["hub"]
    assert {"matplotlib", "nbclient", "nbformat", "ipykernel"} <= extras["notebooks"]
    for backend, distribution in (("tensorflow", "tensorflow-cpu"), ("jax", "jax"), ("torch", "torch")):
        assert distribution in extras[backend]
