"""A keras-hub teacher sharded over a `model` axis while the student trains
data-parallel over `batch`, on 8 simulated CPU devices: `Distiller`,
`CausalLMDistiller` and `OnPolicyDistiller` take the single-device step, and
every large teacher kernel (the untied output embedding included) is split.

JAX only: `keras.distribution` (layouts, meshes, `ModelParallel`) is JAX's in
Keras 3.15; TensorFlow shards through DTensor-style strategies Keras' trainer
does not expose this way, and PyTorch has no `keras.distribution`.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def results():
    if BACKEND != "jax":
        pytest.skip("keras.distribution is JAX's")
    pytest.importorskip("keras_hub")
    env = {key: value for key, value in os.environ.items() if key not in ("XLA_FLAGS", "KERAS_BACKEND")}
    script = os.path.join(ROOT, "tests", "distillers", "sharded_teacher_script.py")
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["Distiller", "CausalLMDistiller", "on_policy"])
def test_the_sharded_step_is_the_single_device_step(results, kind):
    single, sharded = results[kind]["single"], results[kind]["sharded"]
    np.testing.assert_allclose(sharded["loss"], single["loss"], rtol=1e-4, atol=1e-7)
    largest = max(float(np.max(np.abs(g))) for g in single["gradient"])
    assert largest > 1e-4  # a step that moved the student
    for a, b in zip(sharded["gradient"], single["gradient"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5 * largest + 1e-8)


def test_each_device_holds_a_quarter_or_less_of_every_teacher_kernel(results):
    shards = results["CausalLMDistiller"]["sharded"]["shards"]
    teacher = {path: held for path, held in shards.items() if path.startswith("teacher:")}
    assert "teacher:token_embedding/reverse_embeddings" in teacher
    assert len(teacher) >= 10
    for path, (held, total) in teacher.items():
        assert held * 4 <= total, f"{path}: a device holds {held} of {total} values"
    # The student is replicated: it trains data-parallel.
    for path, (held, total) in shards.items():
        if path.startswith("student:"):
            assert held == total, path
