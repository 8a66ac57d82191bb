import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import make_cnn
from tests.conftest import make_mlp
from tests.conftest import numpy_kl
from tests.conftest import numpy_sparse_ce

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def numpy_of(model, layer, x):
    return ops.convert_to_numpy(keras.Model(model.inputs[0], model.get_layer(layer).output)(x, training=False))


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


@pytest.mark.parametrize("jit_compile", [False, "auto"])
def test_feature_loss_equals_numpy_with_sample_weight(digits, jit_compile):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    student, teacher = make_mlp(16, name="student"), make_mlp(16, name="teacher")
    weights = np.random.default_rng(0).uniform(0, 2, size=len(x)).astype("float32")
    distiller = kd.FeatureDistiller(student, teacher, pairs=[("teacher_hidden", "student_hidden")], feature_loss="hint")
    distiller.compile(optimizer="sgd", loss=SCCE, alpha=0.3, temperature=2.0, feature_weight=3.0, jit_compile=jit_compile)
    hint = 0.5 * ((numpy_of(teacher, "teacher_hidden", x) - numpy_of(student, "student_hidden", x)) ** 2).sum(-1)
    expected = {
        "student_loss": np.sum(weights * numpy_sparse_ce(y, predict(student, x))) / len(x),
        "distillation_loss": np.sum(weights * numpy_kl(predict(teacher, x), predict(student, x), 2.0)) / len(x),
        "feature_loss": np.sum(weights * hint) / len(x),
    }
    expected["loss"] = (
        0.3 * expected["student_loss"] + 0.7 * expected["distillation_loss"] + 3.0 * expected["feature_loss"]
    )
    logs = distiller.evaluate(x, y, sample_weight=weights, batch_size=len(x), verbose=0, return_dict=True)
    for key, value in expected.items():
        np.testing.assert_allclose(logs[key], value, rtol=1e-5, err_msg=key)
    logs = distiller.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected["loss"], rtol=1e-5)


@pytest.mark.parametrize("method", ["feature", "hint", "fsp"])
def test_student_runs_once_per_step(digit_images, method):
    """BatchNorm's moving mean after one step shows how many forward passes
    ran: one gives (1 - momentum) * batch mean, two (1 - momentum^2) * it."""
    (x, y), _ = digit_images
    x, y = x[:32], y[:32]
    student, teacher = make_cnn("student", (8, 8), batch_norm=True), make_cnn("teacher", (8, 8, 8))
    if method == "feature":
        distiller = kd.FeatureDistiller(student, teacher, [("teacher_conv2", "student_bn1")], feature_loss="at")
        distiller.compile(optimizer="sgd", loss=SCCE)
    elif method == "hint":
        distiller = kd.HintDistiller(student, teacher, "teacher_conv2", "student_bn1")
        distiller.compile(optimizer="sgd", loss=SCCE, hint_weight=1.0)
    else:
        pairs = [(("teacher_conv1", "teacher_conv3"), ("student_bn1", "student_bn2"))]
        distiller = kd.FSPDistiller(student, teacher, pairs)
        distiller.compile(optimizer="sgd", loss=SCCE, fsp_weight=1.0)
    conv = numpy_of(student, "student_conv1", x)
    distiller.train_on_batch(x, y)
    moving_mean = ops.convert_to_numpy(student.get_layer("student_bn1").moving_mean)
    np.testing.assert_allclose(moving_mean, 0.5 * conv.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)


def test_hint_stage_trains_only_the_front_and_the_regressor(digit_images):
    (x, _), _ = digit_images
    student, teacher = make_cnn("student", (4, 4, 4), batch_norm=True), make_cnn("teacher", (8, 8))
    distiller = kd.HintDistiller(student, teacher, hint_layer="teacher_conv2", guided_layer="student_conv1")
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
    distiller = kd.HintDistiller(student, teacher, "teacher_hidden", "student_hidden")
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
    auto = kd.HintDistiller(student, teacher, "teacher_hint", "student_conv2")
    regressor = auto.regressors[0]
    assert isinstance(regressor, keras.layers.Conv2D) and regressor.kernel_size == (3, 3)
    assert regressor.filters == 6
    own = keras.layers.Conv2D(6, 3, padding="valid", name="mine")
    custom = kd.HintDistiller(student, teacher, "teacher_hint", "student_conv2", regressor=own)
    assert custom.regressors[0] is own
    custom.fit_hints(x[:64], epochs=1, verbose=0)
    # The regressor stays outside the student.
    assert all(layer.name != "mine" for layer in student.layers)


def test_several_pairs_and_pair_weights(digits):
    (x, y), _ = digits
    student = make_mlp(8, name="student")
    teacher = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(16, name="t1"), keras.layers.Dense(12, name="t2"), keras.layers.Dense(10)],
        name="teacher",
    )
    distiller = kd.HintDistiller(
        student, teacher, hint_layer=["t1", "t2"], guided_layer=["student_hidden", "student_hidden"], pair_weights=[1.0, 2.0]
    )
    assert [layer.units for layer in distiller.regressors] == [16, 12]
    x = x[:32]
    guided = numpy_of(student, "student_hidden", x)
    expected = 0.0
    for weight, layer, regressor in zip([1.0, 2.0], ["t1", "t2"], distiller.regressors):
        mapped = ops.convert_to_numpy(regressor(guided))
        expected += weight * (0.5 * ((numpy_of(teacher, layer, x) - mapped) ** 2).sum(-1)).mean()
    distiller.compile(optimizer="sgd", loss=SCCE, hint_weight=1.0)
    logs = distiller.evaluate(x, y[:32], batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["hint_loss"], expected, rtol=1e-5)


def test_fsp_stage_and_metric(digit_images):
    (x, y), _ = digit_images
    student, teacher = make_cnn("student", (4, 4)), make_cnn("teacher", (4, 8, 4))
    pairs = [(("teacher_conv1", "teacher_conv3"), ("student_conv1", "student_conv2"))]
    distiller = kd.FSPDistiller(student, teacher, pairs)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE, fsp_weight=1.0)
    features = {
        name: numpy_of(model, name, x[:32])
        for model, names in ((teacher, pairs[0][0]), (student, pairs[0][1]))
        for name in names
    }
    g_teacher = ops.convert_to_numpy(kd.losses.fsp_matrix(features["teacher_conv1"], features["teacher_conv3"]))
    g_student = ops.convert_to_numpy(kd.losses.fsp_matrix(features["student_conv1"], features["student_conv2"]))
    expected = ((g_teacher - g_student) ** 2).sum(axis=(1, 2)).mean()
    logs = distiller.evaluate(x[:32], y[:32], batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["fsp_loss"], expected, rtol=1e-4)
    history = distiller.fit_fsp(x[:256], epochs=3, batch_size=32, verbose=0)
    assert history.history["fsp_loss"][-1] < history.history["fsp_loss"][0]
    assert distiller.alpha == 1.0
    distiller.fit(x[:256], y[:256], epochs=1, verbose=0)


@pytest.mark.parametrize("feature_loss", ["at", "rkd_distance", "rkd_angle", "mse"])
def test_feature_distiller_trains_with_each_loss(digit_images, feature_loss):
    (x, y), _ = digit_images
    student, teacher = make_cnn("student", (4, 8)), make_cnn("teacher", (8, 8))
    distiller = kd.FeatureDistiller(student, teacher, [("teacher_conv2", "student_conv2")], feature_loss=feature_loss)
    distiller.compile(optimizer="adam", loss=SCCE, metrics=["accuracy"], alpha=0.5, feature_weight=10.0)
    before = weights_of([teacher])
    history = distiller.fit(x[:256], y[:256], epochs=2, batch_size=64, verbose=0)
    assert np.all(np.isfinite(history.history["feature_loss"]))
    assert_same(before, weights_of([teacher]))


def test_projection_auto_and_nested_layer(digit_images):
    (x, y), _ = digit_images
    backbone = make_cnn("backbone", (4, 4))
    inputs = keras.Input((8, 8, 1))
    student = keras.Model(inputs, backbone(inputs), name="student")
    teacher = make_cnn("teacher", (8, 8))
    distiller = kd.FeatureDistiller(
        student, teacher, [("teacher_conv2", "backbone/backbone_conv2")], feature_loss="mse", projections="auto"
    )
    assert isinstance(distiller.projections[0], keras.layers.Conv2D)
    assert distiller.projections[0].kernel_size == (1, 1)
    distiller.compile(optimizer="adam", loss=SCCE)
    before = weights_of([backbone])
    distiller.fit(x[:128], y[:128], epochs=1, verbose=0)
    assert_changed(before, weights_of([backbone]))
