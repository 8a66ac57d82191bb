import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from keras_distill.losses.decoupled_kd import decoupled_kd_per_example
from tests.conftest import log_softmax
from tests.conftest import numpy_dkd
from tests.conftest import numpy_kl

RNG = np.random.default_rng(3)
TEACHER = (RNG.normal(size=(6, 5)) * 3).astype("float32")
STUDENT = (RNG.normal(size=(6, 5)) * 3).astype("float32")
LABELS = np.array([0, 1, 2, 3, 4, 1])


@pytest.mark.parametrize("alpha, beta, temperature", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0)])
def test_matches_the_authors_formulation(alpha, beta, temperature):
    expected = numpy_dkd(TEACHER, STUDENT, LABELS, alpha, beta, temperature)
    value = kd.losses.decoupled_kd(TEACHER, STUDENT, LABELS, alpha=alpha, beta=beta, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(value), expected.mean(), rtol=1e-4)
    loss = kd.losses.DecoupledKD(alpha=alpha, beta=beta, temperature=temperature)
    weights = np.arange(6, dtype="float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss((TEACHER, LABELS), STUDENT, sample_weight=weights)),
        (expected * weights).sum() / 6,
        rtol=1e-4,
    )


def test_classic_kd_is_tckd_plus_weighted_nckd():
    # KL(p_t || p_s) = TCKD + (1 - p_t[target]) * NCKD, per example (Zhao et al., eq. 5).
    tckd = ops.convert_to_numpy(
        decoupled_kd_per_example(TEACHER, STUDENT, LABELS, alpha=1.0, beta=0.0, temperature=2.0)
    )
    nckd = ops.convert_to_numpy(
        decoupled_kd_per_example(TEACHER, STUDENT, LABELS, alpha=0.0, beta=1.0, temperature=2.0)
    )
    p_target = np.exp(log_softmax(TEACHER / 2.0))[np.arange(6), LABELS]
    np.testing.assert_allclose(tckd + (1 - p_target) * nckd, numpy_kl(TEACHER, STUDENT, 2.0), rtol=1e-4, atol=1e-6)


def test_label_forms_shifts_and_unlabeled_examples():
    sparse = ops.convert_to_numpy(kd.losses.decoupled_kd(TEACHER, STUDENT, LABELS))
    one_hot = np.eye(5, dtype="float32")[LABELS]
    np.testing.assert_allclose(
        ops.convert_to_numpy(kd.losses.decoupled_kd(TEACHER, STUDENT, one_hot)), sparse, rtol=1e-5
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(kd.losses.decoupled_kd(TEACHER, STUDENT, LABELS[:, None])), sparse, rtol=1e-5
    )
    shifted = kd.losses.decoupled_kd(TEACHER + 7.0, STUDENT - 3.0, LABELS)
    np.testing.assert_allclose(ops.convert_to_numpy(shifted), sparse, rtol=1e-4)
    # An unlabeled example (-1, as with ignore_class) takes the teacher's top class.
    unlabeled = np.where(np.arange(6) % 2 == 0, -1, LABELS)
    filled = np.where(unlabeled < 0, TEACHER.argmax(-1), LABELS)
    np.testing.assert_allclose(
        ops.convert_to_numpy(kd.losses.decoupled_kd(TEACHER, STUDENT, unlabeled)),
        numpy_dkd(TEACHER, STUDENT, filled, 1.0, 8.0, 4.0).mean(),
        rtol=1e-4,
    )


def test_finite_when_the_teacher_is_certain():
    teacher = np.array([[60.0, 0.0, 0.0], [0.0, -60.0, 60.0]], "float32")
    student = np.array([[0.0, 60.0, 0.0], [60.0, 0.0, 0.0]], "float32")
    value = ops.convert_to_numpy(kd.losses.decoupled_kd(teacher, student, np.array([0, 2]), temperature=1.0))
    assert np.isfinite(value) and value > 0


def test_name_config_and_errors():
    assert isinstance(kd.losses.get("dkd"), kd.losses.DecoupledKD)
    loss = kd.losses.DecoupledKD(alpha=2.0, beta=4.0, temperature=3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert (restored.alpha, restored.beta, restored.temperature, restored.needs_labels) == (2.0, 4.0, 3.0, True)
    with pytest.raises(ValueError, match="beta=-1"):
        kd.losses.DecoupledKD(beta=-1)


def test_every_label_form_per_token():
    """Per-token logits (batch, tokens, classes) with tokens != classes:
    indices (as ints or floats, with or without a trailing axis) and one-hot
    labels pick the same target class of each token; -1 and an index equal
    to the number of classes are unlabeled and take the teacher's top class."""
    teacher = (RNG.normal(size=(2, 3, 5)) * 3).astype("float32")
    student = (RNG.normal(size=(2, 3, 5)) * 3).astype("float32")
    labels = np.array([[4, -1, 2], [5, 0, 3]])
    filled = np.where((labels < 0) | (labels >= 5), teacher.argmax(-1), labels)
    expected = numpy_dkd(teacher.reshape(6, 5), student.reshape(6, 5), filled.reshape(6), 1.0, 8.0, 4.0).reshape(2, 3)
    for form in (labels, labels[..., None], labels.astype("float32"), np.eye(5, dtype="float32")[filled]):
        value = ops.convert_to_numpy(decoupled_kd_per_example(teacher, student, form))
        np.testing.assert_allclose(value, expected, rtol=1e-4, err_msg=str(form.shape))


def test_two_classes_one_hot_is_not_an_index():
    teacher, student = TEACHER[:, :2], STUDENT[:, :2]
    labels = LABELS % 2
    expected = numpy_dkd(teacher, student, labels, 1.0, 8.0, 4.0)
    value = decoupled_kd_per_example(teacher, student, np.eye(2, dtype="float32")[labels])
    np.testing.assert_allclose(ops.convert_to_numpy(value), expected, rtol=1e-4, atol=1e-6)


def test_the_loss_object_refuses_logits_without_labels():
    """Two examples of teacher logits are not (logits, labels): the loss
    asks for the labels rather than reading row 1 as labels."""
    loss = kd.losses.DecoupledKD()
    for y_true in (TEACHER[:2], (TEACHER, LABELS, LABELS)):
        with pytest.raises(ValueError, match=r"needs the labels: call it as loss\(\(teacher_logits, labels\)"):
            loss(y_true, STUDENT[:2] if len(y_true) == 2 else STUDENT)
