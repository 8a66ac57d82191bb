import os

import pytest

from tests.conftest import BACKEND

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")


@pytest.mark.skipif(BACKEND != "jax", reason="notebooks run once, on the JAX backend")
@pytest.mark.parametrize("name", sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb")))
def test_notebook_runs(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("KERAS_DISTILL_QUICK", "1")
    monkeypatch.setenv("KERAS_DISTILL_OFFLINE", "1")
    monkeypatch.setenv("KERAS_DISTILL_OUTPUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "strip outputs"
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert os.path.exists(tmp_path / "student.keras")
    if name != "07_language_model.ipynb":  # a keras-hub model: .keras only
        assert os.path.exists(tmp_path / "student_savedmodel" / "saved_model.pb")
    if name == "08_deploy.ipynb":
        assert {"student_int8.tflite", "student_int4.onnx", "accuracy_by_format.png"} <= set(os.listdir(tmp_path))
    else:
        assert os.path.exists(tmp_path / "learning_curves.png")
    if name in ("02_hint_distiller.ipynb", "03_fsp_distiller.ipynb"):
        assert os.path.exists(tmp_path / "matched_features.png")
