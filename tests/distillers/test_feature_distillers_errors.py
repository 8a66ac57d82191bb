import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_cnn
from tests.conftest import make_mlp

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_unknown_layer_lists_the_models_layers():
    with pytest.raises(ValueError, match=r"No layer named 'student_block9'.*student_conv1, student_conv2"):
        kd.HintDistiller(make_cnn("student"), make_cnn("teacher"), "teacher_conv1", "student_block9")


def test_subclassed_student():
    class Student(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.hidden = keras.layers.Dense(8, name="hidden")
            self.out = keras.layers.Dense(10)

        def call(self, x):
            return self.out(self.hidden(x))

    student = Student()
    student(np.zeros((1, 64), "float32"))
    with pytest.raises(ValueError, match="subclassed Student.*functional API"):
        kd.FeatureDistiller(student, make_mlp(8, name="teacher"), [("teacher_hidden", "hidden")])


def test_shapes_that_cannot_be_matched():
    student, teacher = make_mlp(8, name="student"), make_mlp(16, name="teacher")
    with pytest.raises(ValueError, match=r"teacher 'teacher_hidden'.*\(batch, 16\).*\(batch, 8\).*projection"):
        kd.FeatureDistiller(student, teacher, [("teacher_hidden", "student_hidden")], feature_loss="mse")
    with pytest.raises(ValueError, match="smaller than"):
        kd.HintDistiller(make_cnn("student"), _pooled_cnn(), "big", "student_conv1")
    with pytest.raises(ValueError, match=r"4 and 8 channels|\(4, 4\).*\(8, 8\)"):
        kd.FSPDistiller(
            make_cnn("student", (8, 8)),
            make_cnn("teacher", (4, 4)),
            [(("teacher_conv1", "teacher_conv2"), ("student_conv1", "student_conv2"))],
        )
    with pytest.raises(ValueError, match="same spatial size"):
        kd.FeatureDistiller(make_cnn("student"), _pooled_cnn(), [("small", "student_conv1")], feature_loss="at")


def _pooled_cnn():
    inputs = keras.Input((8, 8, 1))
    big = keras.layers.Conv2D(4, 3, padding="same", name="big")(keras.layers.UpSampling2D(name="up")(inputs))
    small = keras.layers.MaxPooling2D(4, name="small")(big)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(small)), name="teacher")


def test_fit_before_the_feature_stage():
    student, teacher = make_mlp(8, name="student"), make_mlp(16, name="teacher")
    distiller = kd.HintDistiller(student, teacher, "teacher_hidden", "student_hidden")
    distiller.compile(optimizer="sgd", loss=SCCE)
    x, y = np.zeros((4, 64), "float32"), np.zeros((4,), "int32")
    with pytest.raises(ValueError, match=r"before fit_hints\(\).*distiller.fit_hints\(x"):
        distiller.fit(x, y, verbose=0)
    # A hint weight makes a single stage legitimate.
    distiller.compile(optimizer="sgd", loss=SCCE, hint_weight=0.5)
    distiller.fit(x, y, verbose=0)


def test_bad_pairs_and_weights():
    student, teacher = make_mlp(8, name="student"), make_mlp(8, name="teacher")
    with pytest.raises(ValueError, match="non-empty list"):
        kd.FeatureDistiller(student, teacher, [])
    with pytest.raises(ValueError, match="pair_weights"):
        kd.FeatureDistiller(student, teacher, [("teacher_hidden", "student_hidden")], pair_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="as many layers"):
        kd.HintDistiller(student, teacher, ["teacher_hidden"], ["student_hidden", "student_logits"])
    with pytest.raises(ValueError, match="two teacher layers and two student layers"):
        kd.FSPDistiller(student, teacher, [("teacher_hidden", "student_hidden")])
    with pytest.raises(ValueError, match="one projection per pair"):
        kd.FeatureDistiller(student, teacher, [("teacher_hidden", "student_hidden")], projections=[None, None])
    distiller = kd.FeatureDistiller(student, teacher, [("teacher_hidden", "student_hidden")])
    with pytest.raises(ValueError, match="feature_weight=-1"):
        distiller.compile(loss=SCCE, feature_weight=-1)
