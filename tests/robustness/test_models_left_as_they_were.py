"""2. Distilling changes nothing the user owns."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import make_pair

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _trains(model, x, y):
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, verbose=0)
    return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_former_teacher_still_trains_on_its_own_and_as_a_student(digits):
    (x, y), _ = digits
    x, y = x[:128], y[:128]
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=SCCE)
    frozen = [w.copy() for w in teacher.get_weights()]
    distiller.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(frozen, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)  # frozen for the distiller's steps
    assert teacher.trainable and all(v.trainable for v in teacher.trainable_variables)
    teacher.compile(optimizer="adam", loss=SCCE)
    assert _trains(teacher, x, y)  # ... and trainable again right after
    again = kd.Distiller(student=teacher, teacher=make_mlp(32, name="new_teacher"))
    again.compile(optimizer="adam", loss=SCCE)
    assert _trains(again, x, y)  # the former teacher learns as a student


def test_hints_leave_the_teacher_trainable(digits):
    (x, y), _ = digits
    student, teacher = make_pair()
    frozen = [w.copy() for w in teacher.get_weights()]
    distiller = kd.HintDistiller(
        student=student, teacher=teacher, hint_layer="teacher_hidden", guided_layer="student_hidden"
    )
    distiller.compile(optimizer="adam", loss=SCCE)
    distiller.fit_hints(x[:64], epochs=1, verbose=0)
    for a, b in zip(frozen, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert teacher.trainable


def test_layers_shared_by_teacher_and_student_are_refused():
    shared = keras.layers.Dense(16, activation="relu", name="shared_hidden")
    inputs = keras.Input((64,))
    teacher = keras.Model(inputs, keras.layers.Dense(10, name="t_out")(shared(inputs)), name="teacher")
    student = keras.Model(inputs, keras.layers.Dense(10, name="s_out")(shared(inputs)), name="student")
    with pytest.raises(
        ValueError, match=r"share 2 variable\(s\): shared_hidden/kernel, shared_hidden/bias.*clone_model"
    ):
        kd.Distiller(student=student, teacher=teacher)
