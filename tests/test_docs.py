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
    quickstart = python_block("README.md", "## Quickstart")
    assert len(quickstart.strip().splitlines()) <= 40
    # The same code as examples/quickstart.py, which the docs' first page includes and
    # tests/test_packaging.py runs as written, from the installed wheel.
    with open(os.path.join(ROOT, "examples", "quickstart.py")) as f:
        assert quickstart == f.read()
    with open(os.path.join(ROOT, "docs", "index.md")) as f:
        assert '--8<-- "examples/quickstart.py"' in f.read()
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


def public_names():
    """Every public name a user reaches: `keras_distill.__all__`, the public
    classes and functions of its modules there (`losses` with what it
    gathers from its files) and of `keras_distill.export`, and what `tune`
    returns."""
    import importlib
    import inspect

    names = ["keras_distill.tuning.TuneResult"]
    modules = [importlib.import_module("keras_distill.export")]
    for name in kd.__all__:
        value = getattr(kd, name)
        if inspect.ismodule(value):
            modules.append(value)
        else:
            names.append(f"keras_distill.{name}")
    for module in modules:
        for name, value in vars(module).items():
            origin = getattr(value, "__module__", "") or ""
            if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            if origin == module.__name__ or (module is kd.losses and origin.startswith("keras_distill.losses")):
                names.append(f"{module.__name__}.{name}")
    return names


def test_public_names_cover_the_losses_features_and_export():
    names = public_names()
    assert len(names) > 70
    for name in ("keras_distill.losses.SoftTargetKLDivergence", "keras_distill.features.build_feature_extractor"):
        assert name in names
    assert "keras_distill.export.export_saved_model" in names and "keras_distill.Distiller" in names


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
    # The reference is generated from the docstrings, one entry per public name.
    assert "Trains a student to match a frozen teacher" in api
    missing = [name for name in public_names() if f'id="{name}"' not in api]
    assert not missing, f"not in docs/api.md: {missing}"
    index = (tmp_path / "site" / "index.html").read_text()
    assert "y_few" in index and "8&lt;" not in index  # the quickstart, included
    for page in ("guides/distillation-that-pays", "guides/migrating", "reproductions", "benchmarks"):
        assert (tmp_path / "site" / page / "index.html").exists(), page
