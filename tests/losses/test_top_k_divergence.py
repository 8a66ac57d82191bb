import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import numpy_top_k_kl

RNG = np.random.default_rng(1)


TEACHER = (RNG.normal(size=(4, 3, 7)) * 3).astype("float32")


STUDENT = (RNG.normal(size=(4, 3, 7)) * 3).astype("float32")


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_top_k_loss(temperature):
    dense = ops.convert_to_numpy(kd.losses.soft_target_kl_divergence(TEACHER, STUDENT, temperature=temperature))
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 7)
    full = kd.losses.top_k_kl_divergence(indices, log_probs, STUDENT, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(full), dense, rtol=1e-4, atol=1e-5)
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 3)
    sparse = ops.convert_to_numpy(kd.losses.top_k_kl_divergence(indices, log_probs, STUDENT, temperature=temperature))
    np.testing.assert_allclose(sparse, numpy_top_k_kl(TEACHER, STUDENT, 3, temperature), rtol=1e-4, atol=1e-5)
    assert np.all(sparse >= -1e-6)


def test_the_top_k_loss_round_trips_its_temperature():
    loss = kd.losses.TopKKLDivergence(temperature=3.5, name="top_k")
    restored = kd.losses.TopKKLDivergence.from_config(loss.get_config())
    assert restored.get_config() == loss.get_config() and restored.get_config()["temperature"] == 3.5
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 3)
    packed = kd.losses.pack_top_k(indices, log_probs)
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(packed, STUDENT)), numpy_top_k_kl(TEACHER, STUDENT, 3, 3.5).mean(), rtol=1e-4
    )
