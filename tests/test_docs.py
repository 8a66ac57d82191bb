"""What a reader meets first: the README, the docs site and the examples on
its pages, which must run as written."""

import os
import re
import subprocess
import sys

import pytest

import keras_distill as kd
from tests.conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def python_block(path, heading):
    """The first ```python block after `heading` in the markdown file `path`."""
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    start = text.index(heading)
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_the_readme_is_short_and_names_the_two_commands():
    with open(README) as f:
        text = f.read()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text
    assert len(python_block("README.md", "## Quickstart").strip().splitlines()) <= 15
    for wording in ("before this change", "Since 20", "An earlier version", "now trains"):
        assert wording not in text


@pytest.fixture
def small_fashion_mnist(monkeypatch, tmp_path):
    full = kd.datasets.load_fashion_mnist

    def subset(**kwargs):
        (x, y), (x_test, y_test) = full(**kwargs)
        return (x[:1500], y[:1500]), (x_test[:500], y_test[:500])

    monkeypatch.setattr(kd.datasets, "load_fashion_mnist", subset)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.skipif(BACKEND != "jax", reason="the documented examples run once, on JAX")
@pytest.mark.parametrize(
    "path, heading, max_lines",
    [
        ("README.md", "## Quickstart", 15),
        ("docs/index.md", "## A first distillation", 35),
        ("docs/guides/distillation-that-pays.md", "# Distillation that pays", 35),
        ("docs/guides/feature-distillation.md", "# Feature distillation", 35),
        ("docs/guides/online-and-multi-teacher.md", "# Several teachers", 35),
        ("docs/guides/speed-and-devices.md", "## Cached teacher outputs", 35),
        ("docs/guides/speed-and-devices.md", "## Training on several GPUs or TPUs", 35),
        ("docs/guides/language-models.md", "# Language models", 35),
        ("docs/guides/migrating.md", "With keras_distill:", 35),
    ],
)
def test_documented_example_runs(small_fashion_mnist, path, heading, max_lines):
    code = python_block(path, heading)
    assert len(code.strip().splitlines()) <= max_lines
    code = re.sub(r"epochs=\d+", "epochs=1", code)
    exec(compile(code, path, "exec"), {})
    assert (small_fashion_mnist / "student.keras").exists()


@pytest.mark.skipif(BACKEND != "jax", reason="the site is the same on every backend: built once, on JAX")
def test_the_docs_site_builds_strictly(tmp_path):
    mkdocs = os.path.join(os.path.dirname(sys.executable), "mkdocs")
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    # The reference is generated from the docstrings.
    assert "Trains a student to match a frozen teacher" in api
    for page in ("guides/distillation-that-pays", "guides/migrating", "reproductions", "benchmarks"):
        assert (tmp_path / "site" / page / "index.html").exists(), page
