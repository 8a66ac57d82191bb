import os
import re

import pytest

import keras_distill as kd
from tests.conftest import BACKEND

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


@pytest.mark.skipif(BACKEND != "jax", reason="the README example runs once, on JAX")
def test_readme_example_runs(monkeypatch, tmp_path):
    with open(README) as f:
        code = re.search(r"## Example\n\n```python\n(.*?)```", f.read(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 16
    full = kd.datasets.load_fashion_mnist

    def subset(**kwargs):
        (x, y), (x_test, y_test) = full(**kwargs)
        return (x[:1500], y[:1500]), (x_test[:500], y_test[:500])

    monkeypatch.setattr(kd.datasets, "load_fashion_mnist", subset)
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("epochs=5", "epochs=1"), "README.md", "exec"), {})
    assert (tmp_path / "student.keras").exists()
