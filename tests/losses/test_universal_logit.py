import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import log_softmax

RNG = np.random.default_rng(7)


def numpy_uld(teacher, student, temperature):
    """Boizard et al.'s loss per token, in float64: sorted probabilities, the
    smaller vocabulary zero-padded, sequences truncated to the shorter."""
    if teacher.ndim >= 3:
        length = min(teacher.shape[1], student.shape[1])
        teacher, student = teacher[:, :length], student[:, :length]
    p_t = -np.sort(-np.exp(log_softmax(np.float64(teacher) / temperature)), axis=-1)
    p_s = -np.sort(-np.exp(log_softmax(np.float64(student) / temperature)), axis=-1)
    size = max(p_t.shape[-1], p_s.shape[-1])
    pad = lambda p: np.concatenate([p, np.zeros(p.shape[:-1] + (size - p.shape[-1],))], -1)  # noqa: E731
    return np.abs(pad(p_t) - pad(p_s)).sum(-1)


@pytest.mark.parametrize(
    "teacher_shape, student_shape",
    [
        ((6, 10), (6, 10)),
        ((6, 256), (6, 40)),
        ((3, 7, 50), (3, 5, 300)),
        ((2, 4, 30), (2, 6, 20)),
        # Lengths and vocabularies crossed: 4 tokens of 6 against 6 of 4.
        ((2, 4, 6), (2, 6, 4)),
        # An extra axis after the tokens (e.g. beams).
        ((2, 4, 3, 10), (2, 6, 3, 8)),
    ],
)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_matches_numpy_across_vocabularies_and_lengths(teacher_shape, student_shape, temperature):
    teacher = (RNG.normal(size=teacher_shape) * 3).astype("float32")
    student = (RNG.normal(size=student_shape) * 3).astype("float32")
    expected = numpy_uld(teacher, student, temperature)
    value = kd.losses.universal_logit_distillation(teacher, student, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(value), expected.mean(), rtol=1e-5)
    if student.ndim >= 3:
        # The loss object gives one value per student token, 0 past the
        # teacher's sequence, so that the student's token weights apply.
        missing = student.shape[1] - expected.shape[1]
        expected = np.pad(expected, ((0, 0), (0, missing)) + ((0, 0),) * (expected.ndim - 2))
    loss = kd.losses.UniversalLogitDistillation(temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(loss(teacher, student)), expected.mean(), rtol=1e-5)
    weights = np.linspace(0, 2, expected.shape[0]).astype("float32")
    weights = weights.reshape((-1,) + (1,) * (expected.ndim - 1))
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(teacher, student, sample_weight=weights)), np.mean(weights * expected), rtol=1e-5
    )


def test_zero_for_a_permuted_vocabulary_and_bounded_by_two():
    teacher = (RNG.normal(size=(4, 12)) * 3).astype("float32")
    permuted = teacher[:, RNG.permutation(12)]
    assert float(ops.convert_to_numpy(kd.losses.universal_logit_distillation(teacher, permuted))) == pytest.approx(
        0.0, abs=1e-6
    )
    sharp, flat = np.eye(12, dtype="float32")[:4] * 50.0, np.zeros((4, 30), "float32")
    value = float(ops.convert_to_numpy(kd.losses.universal_logit_distillation(sharp, flat)))
    assert value == pytest.approx(2.0 - 2.0 / 30, abs=1e-4)


def test_name_and_config():
    assert isinstance(kd.losses.get("uld"), kd.losses.UniversalLogitDistillation)
    loss = kd.losses.UniversalLogitDistillation(temperature=3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, kd.losses.UniversalLogitDistillation) and restored.temperature == 3.0
