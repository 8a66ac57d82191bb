import os
import re

import pytest

import keras_distill as kd
from tests.conftest import BACKEND

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_block(heading):
    with open(README) as f:
        return re.search(rf"## {re.escape(heading)}\n(?:[^#]*?\n)?```python\n(.*?)```", f.read(), re.S).group(1)


@pytest.fixture
def small_fashion_mnist(monkeypatch, tmp_path):
    full = kd.datasets.load_fashion_mnist

    def subset(**kwargs):
        (x, y), (x_test, y_test) = full(**kwargs)
        return (x[:1500], y[:1500]), (x_test[:500], y_test[:500])

    monkeypatch.setattr(kd.datasets, "load_fashion_mnist", subset)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.skipif(BACKEND != "jax", reason="the README examples run once, on JAX")
@pytest.mark.parametrize(
    "heading, max_lines",
    [
        ("Example", 16),
        ("Distillation that pays: teachers, losses, and a tuner that never loses", 24),
        ("Feature distillation: FitNets, FSP, attention, relations", 22),
        ("Several teachers, class subsets, cohorts, chains, generations", 20),
        ("Cached teacher outputs", 16),
        ("Training on several GPUs or TPUs", 18),
        ("Language models (keras-hub): token-level distillation", 18),
    ],
)
def test_readme_example_runs(small_fashion_mnist, heading, max_lines):
    code = readme_block(heading)
    assert len(code.strip().splitlines()) <= max_lines
    code = re.sub(r"epochs=\d+", "epochs=1", code)
    exec(compile(code, "README.md", "exec"), {})
    assert (small_fashion_mnist / "student.keras").exists()
