import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import numpy_dkd
from tests.conftest import numpy_kl

RNG = np.random.default_rng(11)
TEACHER = (RNG.normal(size=(5, 4)) * 3).astype("float32")
STUDENT = (RNG.normal(size=(5, 4)) * 3).astype("float32")
LABELS = np.array([0, 3, 1, 2, 3])
WEIGHTS = np.array([1.0, 0.0, 2.0, 0.5, 1.0], "float32")


def _kl(temperature):
    return kd.losses.SoftTargetKLDivergence(temperature=temperature)


def test_each_loss_counts_once_by_default():
    loss = kd.losses.WeightedSum([_kl(1.0), _kl(4.0)])
    assert loss.weights == [1.0, 1.0] and not loss.needs_labels
    assert (loss.name, loss.reduction) == ("weighted_sum", "sum_over_batch_size")
    expected = numpy_kl(TEACHER, STUDENT, 1.0) + numpy_kl(TEACHER, STUDENT, 4.0)
    np.testing.assert_allclose(ops.convert_to_numpy(loss(TEACHER, STUDENT)), expected.mean(), rtol=1e-5)


def test_weights_reduction_name_and_a_round_trip():
    loss = kd.losses.WeightedSum([_kl(1.0), _kl(4.0)], weights=[0.7, 0.3], reduction="sum", name="two_temperatures")
    expected = 0.7 * numpy_kl(TEACHER, STUDENT, 1.0) + 0.3 * numpy_kl(TEACHER, STUDENT, 4.0)
    value = ops.convert_to_numpy(loss(TEACHER, STUDENT, sample_weight=WEIGHTS))
    np.testing.assert_allclose(value, (expected * WEIGHTS).sum(), rtol=1e-5)
    assert loss.name == "two_temperatures"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert (restored.name, restored.reduction, restored.weights) == ("two_temperatures", "sum", [0.7, 0.3])
    assert [type(inner) for inner in restored.losses] == [kd.losses.SoftTargetKLDivergence] * 2
    assert [inner.temperature for inner in restored.losses] == [1.0, 4.0]
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(TEACHER, STUDENT, sample_weight=WEIGHTS)), value, rtol=1e-6
    )


def test_labels_reach_only_the_losses_that_need_them():
    """DKD receives `(teacher_logits, labels)`; a Keras loss without a
    `needs_labels` attribute receives the teacher's logits alone."""
    loss = kd.losses.WeightedSum([kd.losses.DecoupledKD(), keras.losses.MeanSquaredError()], weights=[1.0, 0.25])
    assert loss.needs_labels
    expected = numpy_dkd(TEACHER, STUDENT, LABELS, 1.0, 8.0, 4.0) + 0.25 * ((TEACHER - STUDENT) ** 2).mean(-1)
    value = ops.convert_to_numpy(loss((TEACHER, LABELS), STUDENT))
    np.testing.assert_allclose(value, expected.mean(), rtol=1e-4)
    keras_only = kd.losses.WeightedSum([keras.losses.MeanSquaredError()])
    assert not keras_only.needs_labels
    np.testing.assert_allclose(
        ops.convert_to_numpy(keras_only(TEACHER, STUDENT)), ((TEACHER - STUDENT) ** 2).mean(), rtol=1e-5
    )


def test_a_loss_that_is_not_a_keras_loss_is_refused():
    with pytest.raises(TypeError, match=r"Received: losses\[1\]='kl' \(of type str\)"):
        kd.losses.WeightedSum([_kl(1.0), "kl"])


def test_the_sum_stays_float32_whatever_floatx():
    loss = kd.losses.WeightedSum([_kl(1.0), _kl(4.0)], weights=[0.7, 0.3])
    expected = ops.convert_to_numpy(loss(TEACHER * 30, STUDENT * 30))
    floatx = keras.config.floatx()
    keras.config.set_floatx("float16")
    try:
        value = kd.losses.WeightedSum([_kl(1.0), _kl(4.0)], weights=[0.7, 0.3])(TEACHER * 30, STUDENT * 30)
    finally:
        keras.config.set_floatx(floatx)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    np.testing.assert_allclose(ops.convert_to_numpy(value), expected, rtol=1e-6)
