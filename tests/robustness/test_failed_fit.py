"""1. A failed `fit` never destroys a model."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_pair

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _data(digits, size=64):
    (x, y), _ = digits
    return x[:size], y[:size]


def test_a_mistake_in_the_data_is_refused_and_the_models_keep_their_weights(digits):
    x, y = _data(digits)
    student, teacher = make_pair()
    before = teacher.predict(x, verbose=0), [w.copy() for w in student.get_weights()]
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=SCCE)
    with pytest.raises(ValueError, match="look one-hot"):
        distiller.fit(x, keras.utils.to_categorical(y, 10), epochs=1, verbose=0)
    np.testing.assert_array_equal(teacher.predict(x, verbose=0), before[0])
    for a, b in zip(before[1], student.get_weights()):
        np.testing.assert_array_equal(a, b)
    history = distiller.fit(x, y, epochs=2, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def raising_loss(y_true, y_pred):
    raise RuntimeError("a loss that fails while the first step is traced")


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_an_error_inside_a_step_leaves_every_model_usable(digits, method):
    # The pre-flight checks cannot see this one: it happens inside the step.
    x, y = _data(digits)
    student, teacher = make_pair()
    teacher_output_kind, student_weights = teacher.predict(x, verbose=0), [w.copy() for w in student.get_weights()]
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=SCCE, distillation_loss=raising_loss)
    with pytest.raises(Exception, match="fails while the first step is traced"):
        getattr(distiller, method)(x, y, verbose=0)
    np.testing.assert_array_equal(teacher.predict(x, verbose=0), teacher_output_kind)
    for a, b in zip(student_weights, student.get_weights()):
        np.testing.assert_array_equal(a, b)
    distiller.compile(optimizer="adam", loss=SCCE, distillation_loss="kl")
    history = distiller.fit(x, y, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"][-1]) and history["loss"][-1] < history["loss"][0]
    np.testing.assert_array_equal(teacher.predict(x, verbose=0), teacher_output_kind)


def test_a_failed_mutual_step_leaves_the_peers_usable(digits):
    x, y = _data(digits)
    a, b = make_pair()
    outputs = a.predict(x, verbose=0)
    learner = kd.MutualLearner([a, b])
    learner.compile(optimizer="adam", loss=raising_loss)
    with pytest.raises(Exception, match="fails while the first step is traced"):
        learner.fit(x, y, verbose=0)
    np.testing.assert_array_equal(a.predict(x, verbose=0), outputs)
