"""Two JAX processes (`jax.distributed.initialize` on localhost, one CPU
device each, `keras.distribution.DataParallel`) train like one process on
the whole batch: `Distiller` from per-process arrays, `CausalLMDistiller`
(keras-hub GPT-2), and `Distiller` from per-process teacher-cache shards.

JAX only: `jax.distributed` is JAX's multi-process runtime. TensorFlow's is
`tf.distribute.MultiWorkerMirroredStrategy` (Keras' trainer supports it; not
run here), and Keras' PyTorch trainer has no multi-process data parallelism.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import BACKEND

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_process_script.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(BACKEND != "jax", reason="jax.distributed is JAX's multi-process runtime")


def free_port():
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def result(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["distiller", "causal_lm", "cache"])
def test_two_processes_train_like_one(kind, tmp_path):
    if kind == "causal_lm":
        pytest.importorskip("keras_hub")
    cache = str(tmp_path / "cache")
    env = {key: value for key, value in os.environ.items() if key not in ("XLA_FLAGS", "KERAS_BACKEND")}
    single = subprocess.run(
        [sys.executable, SCRIPT, kind, "single", cache], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env
    )
    assert single.returncode == 0, single.stderr[-3000:]
    port = str(free_port())
    workers = [
        subprocess.Popen(
            [sys.executable, SCRIPT, kind, str(process), cache, port],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for process in (0, 1)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    expected, found = result(single.stdout), result(outputs[0][0])
    np.testing.assert_allclose(found["loss"], expected["loss"], rtol=1e-5)
    for a, b in zip(found["weights"], expected["weights"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    # The student trained: the comparison is not of two untouched models.
    assert expected["loss"][1] != expected["loss"][0]
