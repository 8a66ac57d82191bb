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
    code = re.sub(r"epochs=\d+", "epochs=1", quickstart) + "\nprint('FROM', kd.__file__)\n"
    run = tmp_path / "run"
    run.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=run,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"FROM {site}" in result.stdout
    assert (run / "student.keras").exists()
