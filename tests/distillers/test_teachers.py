import os

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import log_softmax
from tests.conftest import make_mlp
from tests.conftest import numpy_kl


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def small_batch(digits):
    (x, y), _ = digits
    return x[:64], y[:64]


def test_several_teachers_distill_their_weighted_mixture(digits):
    x, _ = small_batch(digits)
    student = make_mlp(8, name="student")
    first, second = make_mlp(16, name="first"), make_mlp(24, name="second", softmax=True)
    distiller = kd.Distiller(student, [first, second], teacher_weights=[3, 1])
    distiller.compile(optimizer="sgd", loss=None, alpha=0.0, temperature=2.0)
    soft_first = np.exp(log_softmax(logits(first, x) / 2.0))
    soft_second = np.exp(log_softmax(np.log(logits(second, x)) / 2.0))
    mixture = 0.75 * soft_first + 0.25 * soft_second
    expected = 4.0 * np.sum(mixture * (np.log(mixture) - log_softmax(logits(student, x) / 2.0)), axis=-1).mean()
    logs = distiller.evaluate(x, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    assert distiller.teacher_outputs == ["logits", "probabilities"]
    before = [w.copy() for model in (first, second) for w in model.get_weights()]
    distiller.fit(x, epochs=1, verbose=0)
    after = [w for model in (first, second) for w in model.get_weights()]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_teacher_classes_select_and_renormalize(digits):
    x, y = small_batch(digits)
    student, teacher = make_mlp(8, name="student", classes=3), make_mlp(16, name="teacher")
    distiller = kd.Distiller(student, teacher, teacher_classes=[7, 2, 5])
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", alpha=0.0, temperature=3.0)
    expected = numpy_kl(logits(teacher, x)[:, [7, 2, 5]], logits(student, x), 3.0).mean()
    logs = distiller.evaluate(x, y % 3, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-5)


def test_several_teachers_and_classes_round_trip(digits, tmp_path):
    x, y = small_batch(digits)
    student = make_mlp(8, name="student", classes=2)
    teachers = [make_mlp(16, name="a"), make_mlp(12, name="b")]
    distiller = kd.Distiller(student, teachers, teacher_weights=[1, 2], teacher_classes=[0, 1])
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy", temperature=4.0)
    distiller.fit(x, y % 2, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "multi.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.teachers) == 2 and loaded.teacher_classes == [0, 1]
    np.testing.assert_allclose(loaded.teacher_weights, [1 / 3, 2 / 3])
    np.testing.assert_allclose(
        loaded.evaluate(x, y % 2, verbose=0), distiller.evaluate(x, y % 2, verbose=0), rtol=1e-5
    )
    loaded.fit(x, y % 2, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"teacher_classes": [1, 2]}, "has 2 entries but the student outputs 3"),
        ({"teacher_classes": [1, 2, 10]}, r"\[10\] out of range.*indices 0 to 9"),
        ({"teacher_classes": [1, 1, 2]}, "repeats a class"),
        ({"teacher_classes": "012"}, "non-empty list of class indices"),
    ],
)
def test_teacher_classes_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kd.Distiller(make_mlp(8, name="student", classes=3), make_mlp(16, name="teacher"), **kwargs)


def test_several_teachers_errors():
    student, teacher = make_mlp(8, name="student"), make_mlp(16, name="teacher")
    with pytest.raises(ValueError, match="passed twice in `teacher`"):
        kd.Distiller(student, [teacher, teacher])
    with pytest.raises(ValueError, match="both `student` and `teacher`"):
        kd.Distiller(student, [teacher, student])
    with pytest.raises(ValueError, match="teacher_weights"):
        kd.Distiller(student, [teacher, make_mlp(4, name="other")], teacher_weights=[1.0])
    with pytest.raises(ValueError, match="must have the same shape"):
        kd.Distiller(student, [teacher, make_mlp(4, name="other", classes=5)])
    with pytest.raises(TypeError, match=r"teacher\[1\]"):
        kd.Distiller(student, [teacher, "not a model"])
    with pytest.raises(ValueError, match="distills one teacher's features"):
        kd.FeatureDistiller(student, [teacher, make_mlp(4, name="other")], [("teacher_hidden", "student_hidden")])
