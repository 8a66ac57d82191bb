import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import make_pair

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compiled(**kwargs):
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", **kwargs)
    return distiller


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match=rf"Received: alpha={alpha}\. Use e\.g\. alpha=0\.5"):
        compiled(loss=SCCE, alpha=alpha)


def test_alpha_not_a_number():
    with pytest.raises(TypeError, match="alpha='0.5'"):
        compiled(loss=SCCE, alpha="0.5")


@pytest.mark.parametrize("temperature", [0, -2.0])
def test_temperature_not_positive(temperature):
    with pytest.raises(ValueError, match=rf"Received: temperature={temperature}\. Use e\.g\."):
        compiled(loss=SCCE, temperature=temperature)


def test_conflicting_temperatures():
    with pytest.raises(ValueError, match="Two temperatures"):
        compiled(loss=SCCE, temperature=2.0, distillation_loss=kd.losses.SoftTargetKLDivergence(temperature=4.0))


def test_output_shapes_differ():
    with pytest.raises(ValueError, match=r"teacher 'teacher' outputs \(batch, 10\) and student 'student' outputs \(batch, 5\)"):
        kd.Distiller(student=make_mlp(name="student", classes=5), teacher=make_mlp(name="teacher"))


def test_single_unit_output():
    with pytest.raises(ValueError, match="single unit"):
        kd.Distiller(student=make_mlp(name="student", classes=1), teacher=make_mlp(name="teacher", classes=1))


def test_same_model_twice():
    model = make_mlp(name="model")
    with pytest.raises(ValueError, match="clone_model"):
        kd.Distiller(student=model, teacher=model)


@pytest.mark.parametrize("argument", ["student", "teacher"])
def test_not_a_model(argument):
    models = {"student": make_mlp(name="student"), "teacher": make_mlp(name="teacher")}
    models[argument] = keras.layers.Dense(10)
    with pytest.raises(TypeError, match=rf"`{argument}` must be a keras.Model. Received: {argument}="):
        kd.Distiller(**models)


def test_softmax_student():
    with pytest.raises(ValueError, match="ends in a softmax.*activation=None"):
        kd.Distiller(student=make_mlp(name="student", softmax=True), teacher=make_mlp(name="teacher"))


def test_unknown_distillation_loss_name():
    with pytest.raises(ValueError, match=r"Unknown `distillation_loss` name. Received: distillation_loss='kld2'"):
        compiled(loss=SCCE, distillation_loss="kld2")


def test_probability_loss_for_the_student():
    with pytest.raises(ValueError, match="from_logits=True"):
        compiled(loss=keras.losses.SparseCategoricalCrossentropy())


def test_loss_name_is_built_for_logits():
    distiller = compiled(loss="sparse_categorical_crossentropy")
    assert distiller._student_loss.from_logits is True


def test_no_loss_needs_alpha_zero():
    with pytest.raises(ValueError, match="alpha=0.0"):
        compiled(loss=None, alpha=0.5)
    distiller = compiled(loss=None, alpha=0.0)
    with pytest.raises(ValueError, match="compiled with loss=None"):
        distiller.alpha = 0.3


def test_both_names_of_an_argument():
    with pytest.raises(ValueError, match="student_loss_fn"):
        compiled(loss=SCCE, student_loss_fn=SCCE)


def test_loss_weights_refused():
    with pytest.raises(ValueError, match="loss_weights"):
        compiled(loss=SCCE, loss_weights=[1.0])


def test_labels_missing():
    distiller = compiled(loss=SCCE)
    with pytest.raises(ValueError, match=r"no labels \(y=None\)"):
        distiller.fit(np.zeros((4, 64), "float32"), verbose=0)


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
def test_before_compile(method):
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    x, y = np.zeros((4, 64), "float32"), np.zeros((4,), "int32")
    with pytest.raises(ValueError, match=rf"Distiller.{method}\(\) was called before compile\(\)"):
        getattr(distiller, method)(x, y)


def test_subclassed_teacher_shape_checked_at_first_step():
    class Teacher(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(7)

        def call(self, x):
            return self.dense(x)

    distiller = kd.Distiller(student=make_mlp(name="student"), teacher=Teacher(name="sub"))
    distiller.compile(optimizer="sgd", loss=SCCE)
    weights = [np.copy(w) for w in distiller.student.get_weights()]
    with pytest.raises(ValueError, match=r"teacher 'sub' outputs \(batch, 7\)"):
        distiller.fit(np.zeros((8, 64), "float32"), np.zeros(8, "int32"), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(weights, distiller.student.get_weights()))
