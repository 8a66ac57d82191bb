"""3. Labels are checked, before training."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_pair

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _distiller(loss=SCCE):
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=loss)
    return distiller, student


def _x(n=32):
    return np.random.default_rng(0).random((n, 64)).astype("float32")


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0, 1, 12, 3] * 8), r"8 label\(s\) are outside the 10 classes.*: 12\..*ignore_class=-1"),
        (np.array([0, -1, 2, 3] * 8), r"outside the 10 classes.*: -1"),
        (np.array([3.7, 1.0, 2.0, 3.0] * 8), r"not whole numbers, e.g. 3\.7.*truncated"),
        (np.array([np.nan, 1.0, 2.0, 3.0] * 8), r"NaN or infinite"),
    ],
)
def test_bad_class_indices_are_refused(labels, message):
    distiller, student = _distiller()
    before = [w.copy() for w in student.get_weights()]
    with pytest.raises(ValueError, match=message):
        distiller.fit(_x(), labels, verbose=0)
    for a, b in zip(before, student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_ignore_class_marks_unlabeled_examples():
    distiller, _ = _distiller(keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))
    distiller.fit(_x(), np.array([0, -1, 2, 3] * 8), verbose=0)
    with pytest.raises(ValueError, match=r"outside the 10 classes.*: -2.*ignore_class=-1"):
        distiller.fit(_x(), np.array([0, -2, 2, 3] * 8), verbose=0)


def test_label_format_must_match_the_loss():
    distiller, _ = _distiller()
    with pytest.raises(ValueError, match="look one-hot.*CategoricalCrossentropy\\(from_logits=True\\)"):
        distiller.fit(_x(), keras.utils.to_categorical(np.arange(32) % 10, 10), verbose=0)
    categorical, _ = _distiller(keras.losses.CategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=r"takes one-hot labels of 10 classes.*shape \(32,\).*to_categorical"):
        categorical.fit(_x(), np.arange(32) % 10, verbose=0)
    categorical.fit(_x(), keras.utils.to_categorical(np.arange(32) % 10, 10), verbose=0)


def test_the_first_batch_of_a_dataset_is_checked_and_validation_data_too():
    tf = pytest.importorskip("tensorflow")
    distiller, _ = _distiller()
    dataset = tf.data.Dataset.from_tensor_slices((_x(), np.array([0, 1, 12, 3] * 8))).batch(8)
    with pytest.raises(ValueError, match="outside the 10 classes"):
        distiller.fit(dataset, verbose=0)
    with pytest.raises(ValueError, match="outside the 10 classes"):
        distiller.fit(_x(), np.arange(32) % 10, validation_data=(_x(8), np.full(8, 10)), verbose=0)
    with pytest.raises(ValueError, match="outside the 10 classes"):
        distiller.evaluate(_x(), np.full(32, 10), verbose=0)


def test_mutual_learning_checks_labels_too():
    a, b = make_pair()
    learner = kd.MutualLearner([a, b])
    learner.compile(optimizer="sgd", loss=SCCE)
    with pytest.raises(ValueError, match="outside the 10 classes of the peers"):
        learner.fit(_x(), np.full(32, 11), verbose=0)
