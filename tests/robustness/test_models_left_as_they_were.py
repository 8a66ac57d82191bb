"""2. Distilling changes nothing the user owns."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import make_pair
from tests.conftest import numpy_kl

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


@pytest.mark.parametrize("kind", ["Distiller", "FeatureDistiller"])
def test_the_teacher_gets_no_update_even_from_weight_decay(digits, kind):
    # Gradients never reach the teacher (its outputs pass through
    # stop_gradient), so only its absence from the trainable variables keeps
    # weight decay, which moves every variable it is given, off it.
    (x, y), _ = digits
    student, teacher = make_pair()
    frozen = [w.copy() for w in teacher.get_weights()]
    if kind == "Distiller":
        distiller = kd.Distiller(student=student, teacher=teacher)
    else:
        pairs = [("teacher_hidden", "student_hidden")]
        distiller = kd.FeatureDistiller(student=student, teacher=teacher, pairs=pairs, projections="auto")
    distiller.compile(optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.5), loss=SCCE)
    distiller.fit(x[:128], y[:128], epochs=1, verbose=0)
    for a, b in zip(frozen, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    teacher_variables = {id(v) for v in teacher.variables}
    assert not any(id(v) in teacher_variables for v in distiller.trainable_variables)


def test_the_teacher_runs_in_inference_mode_in_every_step(digits):
    # A teacher with dropout alone (no BatchNorm statistics to watch): in
    # training mode its targets would change from call to call.
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    inputs = keras.Input((64,))
    hidden = keras.layers.Dropout(0.5)(keras.layers.Dense(32, activation="relu")(inputs))
    teacher = keras.Model(inputs, keras.layers.Dense(10)(hidden), name="dropout_teacher")
    student = make_mlp(8, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SCCE, alpha=0.0, temperature=2.0)
    expected = numpy_kl(teacher.predict(x, verbose=0), student.predict(x, verbose=0), 2.0).mean()
    for _ in range(3):
        logs = distiller.train_on_batch(x, y, return_dict=True)
        np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4)


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
