"""The checks a distiller runs on its models and settings before training."""

import keras
import pytest

import keras_distill as kd
from tests.conftest import VOCABULARY
from tests.conftest import causal_lm
from tests.conftest import make_mlp
from tests.conftest import token_batch
from tests.conftest import token_model

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


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
        kd.Distiller(student=make_mlp(8, name="student", classes=3), teacher=make_mlp(16, name="teacher"), **kwargs)


def test_several_teachers_errors():
    student, teacher = make_mlp(8, name="student"), make_mlp(16, name="teacher")
    with pytest.raises(ValueError, match="passed twice in `teacher`"):
        kd.Distiller(student=student, teacher=[teacher, teacher])
    with pytest.raises(ValueError, match="both `student` and `teacher`"):
        kd.Distiller(student=student, teacher=[teacher, student])
    with pytest.raises(ValueError, match="teacher_weights"):
        kd.Distiller(student=student, teacher=[teacher, make_mlp(4, name="other")], teacher_weights=[1.0])
    with pytest.raises(ValueError, match="must have the same shape"):
        kd.Distiller(student=student, teacher=[teacher, make_mlp(4, name="other", classes=5)])
    with pytest.raises(TypeError, match=r"teacher\[1\]"):
        kd.Distiller(student=student, teacher=[teacher, "not a model"])
    with pytest.raises(ValueError, match="distills one teacher's features"):
        kd.FeatureDistiller(
            student=student, teacher=[teacher, make_mlp(4, name="other")], pairs=[("teacher_hidden", "student_hidden")]
        )


def test_top_k_errors():
    x, labels, _ = token_batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    with pytest.raises(ValueError, match="between 1 and the number of classes"):
        kd.Distiller(student=student, teacher=teacher, teacher_top_k=VOCABULARY + 1)
    with pytest.raises(ValueError, match="one teacher"):
        kd.Distiller(student=student, teacher=[teacher, token_model(8, "other")], teacher_top_k=3)
    distiller = kd.Distiller(student=student, teacher=teacher, teacher_top_k=3)
    with pytest.raises(ValueError, match="forward KL, the reverse KL or the generalized JSD"):
        distiller.compile(optimizer="sgd", loss=CE, distillation_loss="dist")
    cache = kd.precompute_teacher_outputs(teacher, x, top_k=3)
    plain = kd.Distiller(student=student, teacher=teacher)
    plain.compile(optimizer="sgd", loss=CE, distillation_loss="dist")
    with pytest.raises(ValueError, match="Received: distillation_loss=DIST"):
        plain.fit(x, kd.with_teacher_outputs(labels, cache), verbose=0)
    with pytest.raises(ValueError, match="positive int"):
        kd.precompute_teacher_outputs(teacher, x, top_k=0)


def test_keras_hub_vocabulary_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"teacher.*student|student.*teacher") as error:
        kd.Distiller(
            student=causal_lm(1, 8, "student", vocabulary=32), teacher=causal_lm(1, 8, "teacher", vocabulary=64)
        )
    assert "64" in str(error.value) and "32" in str(error.value)
