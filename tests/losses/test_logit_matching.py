import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd

RNG = np.random.default_rng(1)
TEACHER = RNG.normal(size=(4, 6)).astype("float32")
STUDENT = RNG.normal(size=(4, 6)).astype("float32")


def centered(z):
    return z - z.mean(axis=-1, keepdims=True)


def test_matches_numpy():
    expected = np.mean((centered(STUDENT) - centered(TEACHER)) ** 2, axis=-1)
    got = kd.losses.logit_matching(TEACHER, STUDENT)
    np.testing.assert_allclose(ops.convert_to_numpy(got), expected, rtol=1e-5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(kd.losses.LogitMatching()(TEACHER, STUDENT)), expected.mean(), rtol=1e-5
    )


def test_uncentered_is_plain_mse():
    expected = np.mean((STUDENT - TEACHER) ** 2, axis=-1)
    got = kd.losses.logit_matching(TEACHER, STUDENT, center=False)
    np.testing.assert_allclose(ops.convert_to_numpy(got), expected, rtol=1e-5)


def test_zero_when_equal_and_invariant_to_shift():
    np.testing.assert_allclose(ops.convert_to_numpy(kd.losses.logit_matching(TEACHER, TEACHER)), 0.0, atol=1e-7)
    base = ops.convert_to_numpy(kd.losses.logit_matching(TEACHER, STUDENT))
    shifted = ops.convert_to_numpy(kd.losses.logit_matching(TEACHER + 3.0, STUDENT - 5.0))
    np.testing.assert_allclose(shifted, base, rtol=1e-4, atol=1e-6)


def test_takes_no_temperature():
    with pytest.raises(TypeError):
        kd.losses.LogitMatching(temperature=2.0)


def test_serialization_round_trip():
    loss = kd.losses.LogitMatching(center=False)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, kd.losses.LogitMatching) and restored.center is False
