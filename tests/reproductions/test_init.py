import os
import re

import pytest

import reproductions as experiments
from reproductions import teacher_store
from reproductions.__main__ import main
from tests.conftest import BACKEND


@pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="the reproductions run once, on TensorFlow (their default backend); each piece is tested on all three",
)
def test_reproduce_all_quick_writes_every_table_and_plot(tmp_path):
    assert main(["all", "--quick", "--output", str(tmp_path)]) == 0
    results = (tmp_path / "RESULTS.md").read_text()
    for name in experiments.NAMES:
        table = (tmp_path / f"{name}.md").read_text()
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
        assert len(rows) >= 3, table
        # Two seeds by default in quick mode: every table reports a mean and a spread.
        assert re.search(r"\d+\.\d+ ± \d+\.\d+", table), table
        assert f"({name}.png)" in results
    assert results.count("`python -m reproductions all --seeds 2 --quick`") == len(experiments.NAMES)
    assert "CPU cores" in results and "Keras" in results

    # Rerunning one experiment replaces its section and keeps the others';
    # its teachers come from the store, not from a new training.
    stored = sorted(os.listdir(teacher_store.default_directory()))
    assert any(name.startswith("cnn_teacher-") for name in stored)
    rerun = experiments.reproduce(["takd"], seeds=1, quick=True, output=str(tmp_path))
    assert sorted(os.listdir(teacher_store.default_directory())) == stored
    assert [r.name for r in rerun] == ["takd"] and "1 seed(s)" in rerun[0].setup
    results = (tmp_path / "RESULTS.md").read_text()
    assert all(f"({name}.png)" in results for name in experiments.NAMES)
    assert results.count("`python -m reproductions all --seeds 2 --quick`") == len(experiments.NAMES) - 1
    assert "`python -m reproductions takd --seeds 1 --quick`" in results
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"{name}.{ext}" for name in experiments.NAMES for ext in ("md", "json", "png")] + ["RESULTS.md"]
    )


def test_unknown_experiment_and_bad_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown experiment\(s\) \['hintonn'\]"):
        experiments.reproduce(["hintonn"], output=str(tmp_path))
    with pytest.raises(ValueError, match="seeds=0"):
        experiments.reproduce(["hinton"], seeds=0, output=str(tmp_path))
    with pytest.raises(SystemExit):
        main(["resnet"])
