import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = ("distiller", "hint", "mutual")


def _run(script):
    result = subprocess.run(
        [sys.executable, "-m", f"tests.distillers.{script}"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_same_training(case):
    single, parallel = case["single"], case["parallel"]
    assert set(single["history"]) == set(parallel["history"])
    assert "loss" in single["history"]
    for key, values in single["history"].items():
        np.testing.assert_allclose(parallel["history"][key], values, rtol=1e-5, err_msg=key)
    assert len(single["weights"]) == len(parallel["weights"])
    for a, b in zip(single["weights"], parallel["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is TensorFlow's")
def test_mirrored_strategy_matches_single_device():
    output = _run("mirrored_script")
    assert output["replicas"] == 2
    # Mirrored: each variable has one copy per replica.
    assert all(len(devices) == 2 for devices in output["variable_devices"])
    for kind in CASES:
        _assert_same_training(output[kind])


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution runs on JAX")
def test_keras_distribution_matches_single_device():
    output = _run("data_parallel_script")
    assert output["replicas"] == 2
    # DataParallel replicates the kernel on both devices; ModelParallel
    # splits its columns between them.
    for sharding in output["kernel_sharding"]:
        assert sharding["devices"] == 2 and all(axis == "None" for axis in sharding["spec"])
    assert output["model_parallel_kernel_sharding"] == {"devices": 2, "spec": ["None", "model"]}
    for kind in CASES + ("distiller_model_parallel",):
        _assert_same_training(output[kind])
