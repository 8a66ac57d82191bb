import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import log_softmax
from tests.conftest import numpy_kl

RNG = np.random.default_rng(1)


TEACHER = (RNG.normal(size=(4, 3, 7)) * 3).astype("float32")


STUDENT = (RNG.normal(size=(4, 3, 7)) * 3).astype("float32")


def numpy_reverse_kl(teacher, student, temperature):
    return numpy_kl(student, teacher, temperature)


def numpy_jsd(teacher, student, beta, temperature):
    p = np.exp(log_softmax(np.float64(teacher) / temperature))
    q = np.exp(log_softmax(np.float64(student) / temperature))
    m = beta * p + (1 - beta) * q
    kl = lambda a, b: np.sum(a * np.log(a / b), axis=-1)  # noqa: E731
    return temperature**2 * (beta * kl(p, m) + (1 - beta) * kl(q, m))


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_divergences_against_numpy(temperature):
    reverse = kd.losses.soft_target_reverse_kl(TEACHER, STUDENT, temperature=temperature)
    np.testing.assert_allclose(
        ops.convert_to_numpy(reverse), numpy_reverse_kl(TEACHER, STUDENT, temperature), rtol=1e-4
    )
    for beta in (0.1, 0.5, 0.9):
        jsd = kd.losses.generalized_jsd(TEACHER, STUDENT, beta=beta, temperature=temperature)
        np.testing.assert_allclose(ops.convert_to_numpy(jsd), numpy_jsd(TEACHER, STUDENT, beta, temperature), rtol=1e-4)
    # Symmetric JSD is bounded by T^2 log 2; both are shift invariant.
    symmetric = ops.convert_to_numpy(kd.losses.generalized_jsd(TEACHER, STUDENT, temperature=temperature))
    assert np.all(symmetric <= temperature**2 * np.log(2) + 1e-6)
    shifted = kd.losses.generalized_jsd(TEACHER + 4.0, STUDENT - 2.0, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(shifted), symmetric, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        ops.convert_to_numpy(kd.losses.soft_target_reverse_kl(TEACHER - 9.0, STUDENT, temperature=temperature)),
        ops.convert_to_numpy(reverse),
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_divergences_finite_in_low_precision(dtype):
    teacher = ops.cast(TEACHER * 10, dtype)
    student = ops.cast(-STUDENT * 10, dtype)
    for loss in (
        kd.losses.SoftTargetReverseKL(2.0),
        kd.losses.GeneralizedJSD(0.3, 2.0),
        kd.losses.SoftTargetKLDivergence(2.0),
    ):
        value = ops.convert_to_numpy(loss(teacher, student))
        assert value.dtype == np.float32 and np.isfinite(value) and value >= 0


def test_divergence_names_and_round_trip():
    assert isinstance(kd.losses.get("reverse_kl"), kd.losses.SoftTargetReverseKL)
    assert isinstance(kd.losses.get("jsd"), kd.losses.GeneralizedJSD)
    loss = kd.losses.GeneralizedJSD(beta=0.8, temperature=3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.beta == 0.8 and restored.temperature == 3.0
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        kd.losses.GeneralizedJSD(beta=1.0)
