import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import log_softmax
from tests.conftest import numpy_kl

RNG = np.random.default_rng(0)
TEACHER = RNG.normal(size=(6, 5)).astype("float32") * 3
STUDENT = RNG.normal(size=(6, 5)).astype("float32") * 3


def numpy_ce(teacher, student, temperature):
    p_t = np.exp(log_softmax(np.asarray(teacher, np.float64) / temperature))
    return -(temperature**2) * np.sum(p_t * log_softmax(np.asarray(student, np.float64) / temperature), axis=-1)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 20.0])
def test_kl_matches_numpy(temperature):
    got = kd.losses.soft_target_kl_divergence(TEACHER, STUDENT, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(got), numpy_kl(TEACHER, STUDENT, temperature), rtol=1e-5, atol=1e-6)
    loss = kd.losses.SoftTargetKLDivergence(temperature=temperature)
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(TEACHER, STUDENT)), numpy_kl(TEACHER, STUDENT, temperature).mean(), rtol=1e-5
    )


def test_kl_hand_computed_value():
    # p_t = softmax([log 3, 0]) = [0.75, 0.25], p_s = [0.5, 0.5], T = 1:
    # KL = 0.75 log 1.5 + 0.25 log 0.5.
    got = kd.losses.soft_target_kl_divergence([[np.log(3.0), 0.0]], [[0.0, 0.0]], temperature=1.0)
    np.testing.assert_allclose(ops.convert_to_numpy(got), [0.75 * np.log(1.5) + 0.25 * np.log(0.5)], rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_cross_entropy_matches_numpy(temperature):
    got = kd.losses.soft_target_cross_entropy(TEACHER, STUDENT, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(got), numpy_ce(TEACHER, STUDENT, temperature), rtol=1e-5)
    loss = kd.losses.SoftTargetCrossEntropy(temperature=temperature)
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(TEACHER, STUDENT)), numpy_ce(TEACHER, STUDENT, temperature).mean(), rtol=1e-5
    )


def test_zero_when_student_equals_teacher():
    kl = kd.losses.SoftTargetKLDivergence(temperature=3.0)(TEACHER, TEACHER)
    np.testing.assert_allclose(ops.convert_to_numpy(kl), 0.0, atol=1e-6)
    # Cross-entropy is then the teacher's entropy (times T^2), not zero.
    ce = kd.losses.soft_target_cross_entropy(TEACHER, TEACHER, temperature=3.0)
    log_p = log_softmax(TEACHER / 3.0)
    entropy = -np.sum(np.exp(log_p) * log_p, axis=-1) * 9.0
    np.testing.assert_allclose(ops.convert_to_numpy(ce), entropy, rtol=1e-5)


@pytest.mark.parametrize("fn", [kd.losses.soft_target_kl_divergence, kd.losses.soft_target_cross_entropy])
def test_invariant_to_logit_shift(fn):
    base = ops.convert_to_numpy(fn(TEACHER, STUDENT, temperature=2.0))
    shifted_teacher = ops.convert_to_numpy(fn(TEACHER + 7.5, STUDENT, temperature=2.0))
    shifted_student = ops.convert_to_numpy(fn(TEACHER, STUDENT - 12.0, temperature=2.0))
    np.testing.assert_allclose(shifted_teacher, base, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(shifted_student, base, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_are_finite_and_computed_in_float32(dtype):
    teacher = np.array([[30.0, -30.0, 0.0], [8.0, 8.0, -40.0]], "float32")
    student = np.array([[-30.0, 30.0, 0.0], [8.0, -40.0, 8.0]], "float32")
    got = kd.losses.soft_target_kl_divergence(ops.cast(teacher, dtype), ops.cast(student, dtype), temperature=1.0)
    assert ops.convert_to_numpy(got).dtype == np.float32
    values = ops.convert_to_numpy(got)
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    np.testing.assert_allclose(values, numpy_kl(teacher, student, 1.0), rtol=1e-2)


def test_sample_weight_and_sequence_axis():
    teacher = RNG.normal(size=(2, 3, 4)).astype("float32")
    student = RNG.normal(size=(2, 3, 4)).astype("float32")
    weights = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0]], "float32")
    loss = kd.losses.SoftTargetKLDivergence(temperature=2.0)
    expected = np.sum(numpy_kl(teacher, student, 2.0) * weights) / weights.size
    np.testing.assert_allclose(ops.convert_to_numpy(loss(teacher, student, sample_weight=weights)), expected, rtol=1e-5)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_rejects_bad_temperature(bad):
    with pytest.raises(ValueError, match=f"Received: temperature={bad}"):
        kd.losses.SoftTargetKLDivergence(temperature=bad)


def test_rejects_non_number_temperature():
    with pytest.raises(TypeError, match="temperature='4'"):
        kd.losses.SoftTargetCrossEntropy(temperature="4")


@pytest.mark.parametrize("cls", [kd.losses.SoftTargetKLDivergence, kd.losses.SoftTargetCrossEntropy])
def test_serialization_round_trip(cls):
    loss = cls(temperature=3.5, reduction="sum", name="custom")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls
    assert restored.get_config() == loss.get_config()
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(TEACHER, STUDENT)), ops.convert_to_numpy(loss(TEACHER, STUDENT))
    )


def test_softened_keras_loss_is_t_squared_times_it_on_probabilities_and_round_trips():
    """The keras.io tutorial's `KLDivergence()` on softened probabilities:
    T^2 * KL, with the inner loss's reduction and name, through a config."""
    inner = keras.losses.KLDivergence(reduction="sum", name="tutorial_kl")
    loss = kd.losses.SoftenedLoss(inner, temperature=3.0)
    weights = np.arange(6, dtype="float32")
    expected = (numpy_kl(TEACHER, STUDENT, 3.0) * weights).sum()
    np.testing.assert_allclose(ops.convert_to_numpy(loss(TEACHER, STUDENT, sample_weight=weights)), expected, rtol=1e-4)
    config = loss.get_config()
    assert "reduction" not in config and (config["name"], config["temperature"]) == ("tutorial_kl", 3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is kd.losses.SoftenedLoss and type(restored.loss) is keras.losses.KLDivergence
    assert (restored.name, restored.reduction, restored.temperature) == ("tutorial_kl", "sum", 3.0)
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(TEACHER, STUDENT, sample_weight=weights)), expected, rtol=1e-4
    )
    default = kd.losses.SoftenedLoss(keras.losses.KLDivergence(), name="mine")
    assert (default.name, default.temperature) == ("mine", 1.0)


def test_a_softened_keras_loss_stays_float32_whatever_floatx():
    expected = ops.convert_to_numpy(
        kd.losses.SoftenedLoss(keras.losses.KLDivergence(), temperature=3.3)(TEACHER, STUDENT)
    )
    floatx = keras.config.floatx()
    keras.config.set_floatx("float16")
    try:
        loss = kd.losses.SoftenedLoss(keras.losses.KLDivergence(), temperature=3.3)
        value = loss(TEACHER, STUDENT)
    finally:
        keras.config.set_floatx(floatx)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    np.testing.assert_allclose(ops.convert_to_numpy(value), expected, rtol=1e-6)
