import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import make_cnn
from tests.conftest import make_mlp

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def predict(model, x):
    return ops.convert_to_numpy(model(x, training=False))


def weights_of(layers):
    return [w.copy() for layer in layers for w in layer.get_weights()]


def assert_same(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def assert_changed(before, after):
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_hint_stage_trains_only_the_front_and_the_regressor(digit_images):
    (x, _), _ = digit_images
    student, teacher = make_cnn("student", (4, 4, 4), batch_norm=True), make_cnn("teacher", (8, 8))
    distiller = kd.HintDistiller(
        student=student, teacher=teacher, hint_layer="teacher_conv2", guided_layer="student_conv1"
    )
    front = [student.get_layer("student_conv1")]
    back = [layer for layer in student.layers if layer.name not in ("student_conv1",)]
    before_front, before_back = weights_of(front), weights_of(back)
    before_regressor, before_teacher = weights_of(distiller.regressors), weights_of([teacher])
    history = distiller.fit_hints(x[:256], epochs=2, batch_size=64, verbose=0)
    assert history.history["hint_loss"][1] < history.history["hint_loss"][0]
    assert_changed(before_front, weights_of(front))
    assert_changed(before_regressor, weights_of(distiller.regressors))
    # BatchNorm statistics included: the layers after the guided one never ran.
    assert_same(before_back, weights_of(back))
    assert_same(before_teacher, weights_of([teacher]))
    assert distiller.feature_stage_done


def test_hint_stage_two_trains_everything_but_the_teacher(digits):
    (x, y), _ = digits
    student, teacher = make_mlp(8, name="student"), make_mlp(32, name="teacher")
    distiller = kd.HintDistiller(
        student=student, teacher=teacher, hint_layer="teacher_hidden", guided_layer="student_hidden"
    )
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE, alpha=0.1, temperature=4.0)
    distiller.fit_hints(x, epochs=1, verbose=0)
    before_student, before_teacher = weights_of([student]), weights_of([teacher])
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert {"loss", "student_loss", "distillation_loss", "hint_loss", "accuracy"} - set(history.history) <= {"accuracy"}
    assert_same(before_teacher, weights_of([teacher]))
    assert all(not np.array_equal(a, b) for a, b in zip(before_student, weights_of([student])))
    assert distiller.predict(x[:5], verbose=0).shape == (5, 10)
    assert distiller.predict_on_batch(x[:5]).shape == (5, 10)


def test_regressor_shapes_and_user_regressor(digit_images):
    (x, _), _ = digit_images
    student = make_cnn("student", (4, 4))
    inputs = keras.Input((8, 8, 1))
    hint = keras.layers.Conv2D(6, 3, padding="valid", name="teacher_hint")(inputs)  # 6x6 maps
    pooled = keras.layers.GlobalAveragePooling2D()(hint)
    teacher = keras.Model(inputs, keras.layers.Dense(10)(pooled), name="teacher")
    auto = kd.HintDistiller(student=student, teacher=teacher, hint_layer="teacher_hint", guided_layer="student_conv2")
    regressor = auto.regressors[0]
    assert isinstance(regressor, keras.layers.Conv2D) and regressor.kernel_size == (3, 3)
    assert regressor.filters == 6
    own = keras.layers.Conv2D(6, 3, padding="valid", name="mine")
    custom = kd.HintDistiller(
        student=student, teacher=teacher, hint_layer="teacher_hint", guided_layer="student_conv2", regressor=own
    )
    assert custom.regressors[0] is own
    custom.fit_hints(x[:64], epochs=1, verbose=0)
    # The regressor stays outside the student.
    assert all(layer.name != "mine" for layer in student.layers)


def test_fit_before_the_feature_stage():
    student, teacher = make_mlp(8, name="student"), make_mlp(16, name="teacher")
    distiller = kd.HintDistiller(
        student=student, teacher=teacher, hint_layer="teacher_hidden", guided_layer="student_hidden"
    )
    distiller.compile(optimizer="sgd", loss=SCCE)
    x, y = np.zeros((4, 64), "float32"), np.zeros((4,), "int32")
    with pytest.raises(ValueError, match=r"before fit_hints\(\).*distiller.fit_hints\(x"):
        distiller.fit(x, y, verbose=0)
    # A hint weight makes a single stage legitimate.
    distiller.compile(optimizer="sgd", loss=SCCE, hint_weight=0.5)
    distiller.fit(x, y, verbose=0)
