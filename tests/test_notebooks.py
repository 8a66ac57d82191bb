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
    if name != "06_language_model.ipynb":  # a keras-hub model: .keras only
        assert os.path.exists(tmp_path / "student_savedmodel" / "saved_model.pb")
    if name == "07_deploy.ipynb":
        assert {"student_int8.tflite", "student_int4.onnx", "accuracy_by_format.png"} <= set(os.listdir(tmp_path))
    else:
        assert os.path.exists(tmp_path / "learning_curves.png")
    if name in ("02_hint_distiller.ipynb", "03_fsp_distiller.ipynb"):
        assert os.path.exists(tmp_path / "matched_features.png")


def differences(source, notebook):
    """Why the notebook file `notebook` is not what its jupytext source
    `source` makes (an empty list when it is)."""
    jupytext = pytest.importorskip("jupytext")
    nbformat = pytest.importorskip("nbformat")
    expected = [(cell.cell_type, cell.source) for cell in jupytext.read(source).cells]
    committed = nbformat.read(notebook, as_version=4)
    found = []
    if [(cell.cell_type, cell.source) for cell in committed.cells] != expected:
        found.append("its cells differ from the source")
    if any(cell.get("outputs") for cell in committed.cells if cell.cell_type == "code"):
        found.append("it has outputs")
    return found


def test_every_notebook_is_its_source():
    """The .ipynb files are written from their linted .py sources
    (`make notebooks`): same cells, no outputs, numbered without gaps, each
    opening with its run time."""
    sources = sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".py"))
    notebooks = sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb"))
    assert [n[:-3] for n in sources] == [n[:-6] for n in notebooks]
    assert [int(n[:2]) for n in sources] == list(range(1, len(sources) + 1))
    for source, name in zip(sources, notebooks):
        found = differences(os.path.join(NOTEBOOKS, source), os.path.join(NOTEBOOKS, name))
        assert not found, f"{name}: {', '.join(found)}; run `make notebooks`"
        with open(os.path.join(NOTEBOOKS, source)) as f:
            assert "Run time" in f.read().split("# %%")[1], f"{name} opens without its run time"


def test_a_notebook_edited_by_hand_is_caught(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    source = os.path.join(NOTEBOOKS, "01_distiller.py")
    notebook = nbformat.read(os.path.join(NOTEBOOKS, "01_distiller.ipynb"), as_version=4)
    notebook.cells[1].source += "\nprint('edited in Jupyter')"
    nbformat.write(notebook, tmp_path / "edited.ipynb")
    assert differences(source, tmp_path / "edited.ipynb") == ["its cells differ from the source"]


def test_the_setup_cell_says_how_to_install_and_stops_without_a_traceback(tmp_path):
    """In a session without keras_distill (Colab) whose install fails, the
    first cell explains the wheel route and stops cleanly."""
    import subprocess
    import sys

    jupytext = pytest.importorskip("jupytext")
    setup = jupytext.read(os.path.join(NOTEBOOKS, "01_distiller.py")).cells[1].source
    hide = (
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'keras_distill' else real(name, *a)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide + setup],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "KERAS_DISTILL_SOURCE": str(tmp_path / "missing.whl")},
    )
    assert result.returncode == 1
    assert "could not be installed from" in result.stdout and "make wheel" in result.stdout
    assert "KERAS_DISTILL_SOURCE" in result.stdout
    assert "Traceback" not in result.stderr
    assert "keras-distill is not installed: see the message above." in result.stderr
