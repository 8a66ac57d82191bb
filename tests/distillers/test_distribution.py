import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is TensorFlow's")
def test_mirrored_strategy_matches_single_device():
    script = os.path.join(os.path.dirname(__file__), "mirrored_script.py")
    result = subprocess.run(
        [sys.executable, script],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["replicas"] == 2
    single, mirrored = output["single"], output["mirrored"]
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(mirrored["history"][key], single["history"][key], rtol=1e-5)
    for a, b in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-6)
