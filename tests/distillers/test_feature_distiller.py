import os

import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import VOCABULARY
from tests.conftest import causal_lm
from tests.conftest import make_cnn
from tests.conftest import make_mlp
from tests.conftest import masked_mean
from tests.conftest import numpy_kl
from tests.conftest import numpy_sparse_ce
from tests.conftest import token_batch
from tests.conftest import token_model

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


def _pooled_cnn():
    inputs = keras.Input((8, 8, 1))
    big = keras.layers.Conv2D(4, 3, padding="same", name="big")(keras.layers.UpSampling2D(name="up")(inputs))
    small = keras.layers.MaxPooling2D(4, name="small")(big)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(small)), name="teacher")


def build(method, student, teacher):
    if method == "hint":
        distiller = kd.HintDistiller(
            student=student, teacher=teacher, hint_layer="teacher_conv2", guided_layer="student_conv1"
        )
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=SCCE,
            metrics=["accuracy"],
            alpha=0.2,
            temperature=3.0,
            hint_weight=0.5,
        )
    elif method == "fsp":
        pairs = [(("teacher_conv1", "teacher_conv2"), ("student_conv1", "student_conv2"))]
        distiller = kd.FSPDistiller(student=student, teacher=teacher, pairs=pairs, data_format="channels_last")
        distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE, metrics=["accuracy"], fsp_weight=0.5)
    else:
        distiller = kd.FeatureDistiller(
            student=student,
            teacher=teacher,
            pairs=[("teacher_conv2", "student_conv2")],
            feature_loss=kd.losses.AttentionTransfer(p=2),
            projections=[keras.layers.Conv2D(8, 1, name="projection")],
        )
        distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE, metrics=["accuracy"], feature_weight=50.0)
    return distiller


CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize("jit_compile", [False, "auto"])
def test_feature_loss_equals_numpy_with_sample_weight(digits, jit_compile):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    student, teacher = make_mlp(16, name="student"), make_mlp(16, name="teacher")
    weights = np.random.default_rng(0).uniform(0, 2, size=len(x)).astype("float32")
    distiller = kd.FeatureDistiller(
        student=student, teacher=teacher, pairs=[("teacher_hidden", "student_hidden")], feature_loss="hint"
    )
    distiller.compile(
        optimizer="sgd", loss=SCCE, alpha=0.3, temperature=2.0, feature_weight=3.0, jit_compile=jit_compile
    )
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
        distiller = kd.FeatureDistiller(
            student=student, teacher=teacher, pairs=[("teacher_conv2", "student_bn1")], feature_loss="at"
        )
        distiller.compile(optimizer="sgd", loss=SCCE)
    elif method == "hint":
        distiller = kd.HintDistiller(
            student=student, teacher=teacher, hint_layer="teacher_conv2", guided_layer="student_bn1"
        )
        distiller.compile(optimizer="sgd", loss=SCCE, hint_weight=1.0)
    else:
        pairs = [(("teacher_conv1", "teacher_conv3"), ("student_bn1", "student_bn2"))]
        distiller = kd.FSPDistiller(student=student, teacher=teacher, pairs=pairs)
        distiller.compile(optimizer="sgd", loss=SCCE, fsp_weight=1.0)
    conv = numpy_of(student, "student_conv1", x)
    distiller.train_on_batch(x, y)
    moving_mean = ops.convert_to_numpy(student.get_layer("student_bn1").moving_mean)
    np.testing.assert_allclose(moving_mean, 0.5 * conv.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)


def test_several_pairs_and_pair_weights(digits):
    (x, y), _ = digits
    student = make_mlp(8, name="student")
    teacher = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(16, name="t1"),
            keras.layers.Dense(12, name="t2"),
            keras.layers.Dense(10),
        ],
        name="teacher",
    )
    distiller = kd.HintDistiller(
        student=student,
        teacher=teacher,
        hint_layer=["t1", "t2"],
        guided_layer=["student_hidden", "student_hidden"],
        pair_weights=[1.0, 2.0],
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


@pytest.mark.parametrize("feature_loss", ["at", "rkd_distance", "rkd_angle", "mse"])
def test_feature_distiller_trains_with_each_loss(digit_images, feature_loss):
    (x, y), _ = digit_images
    student, teacher = make_cnn("student", (4, 8)), make_cnn("teacher", (8, 8))
    distiller = kd.FeatureDistiller(
        student=student, teacher=teacher, pairs=[("teacher_conv2", "student_conv2")], feature_loss=feature_loss
    )
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
        student=student,
        teacher=teacher,
        pairs=[("teacher_conv2", "backbone/backbone_conv2")],
        feature_loss="mse",
        projections="auto",
    )
    assert isinstance(distiller.projections[0], keras.layers.Conv2D)
    assert distiller.projections[0].kernel_size == (1, 1)
    distiller.compile(optimizer="adam", loss=SCCE)
    before = weights_of([backbone])
    distiller.fit(x[:128], y[:128], epochs=1, verbose=0)
    assert_changed(before, weights_of([backbone]))


def test_unknown_layer_lists_the_models_layers():
    with pytest.raises(ValueError, match=r"No layer named 'student_block9'.*student_conv1, student_conv2"):
        kd.HintDistiller(
            student=make_cnn("student"),
            teacher=make_cnn("teacher"),
            hint_layer="teacher_conv1",
            guided_layer="student_block9",
        )


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
        kd.FeatureDistiller(student=student, teacher=make_mlp(8, name="teacher"), pairs=[("teacher_hidden", "hidden")])


def test_shapes_that_cannot_be_matched():
    student, teacher = make_mlp(8, name="student"), make_mlp(16, name="teacher")
    with pytest.raises(ValueError, match=r"teacher 'teacher_hidden'.*\(batch, 16\).*\(batch, 8\).*projection"):
        kd.FeatureDistiller(
            student=student, teacher=teacher, pairs=[("teacher_hidden", "student_hidden")], feature_loss="mse"
        )
    with pytest.raises(ValueError, match="smaller than"):
        kd.HintDistiller(
            student=make_cnn("student"), teacher=_pooled_cnn(), hint_layer="big", guided_layer="student_conv1"
        )
    with pytest.raises(ValueError, match=r"4 and 8 channels|\(4, 4\).*\(8, 8\)"):
        kd.FSPDistiller(
            student=make_cnn("student", (8, 8)),
            teacher=make_cnn("teacher", (4, 4)),
            pairs=[(("teacher_conv1", "teacher_conv2"), ("student_conv1", "student_conv2"))],
        )
    with pytest.raises(ValueError, match="same spatial size"):
        kd.FeatureDistiller(
            student=make_cnn("student"), teacher=_pooled_cnn(), pairs=[("small", "student_conv1")], feature_loss="at"
        )


def test_bad_pairs_and_weights():
    student, teacher = make_mlp(8, name="student"), make_mlp(8, name="teacher")
    with pytest.raises(ValueError, match="non-empty list"):
        kd.FeatureDistiller(student=student, teacher=teacher, pairs=[])
    with pytest.raises(ValueError, match="pair_weights"):
        kd.FeatureDistiller(
            student=student, teacher=teacher, pairs=[("teacher_hidden", "student_hidden")], pair_weights=[1.0, 2.0]
        )
    with pytest.raises(ValueError, match="as many layers"):
        kd.HintDistiller(
            student=student,
            teacher=teacher,
            hint_layer=["teacher_hidden"],
            guided_layer=["student_hidden", "student_logits"],
        )
    with pytest.raises(ValueError, match="two teacher layers and two student layers"):
        kd.FSPDistiller(student=student, teacher=teacher, pairs=[("teacher_hidden", "student_hidden")])
    with pytest.raises(ValueError, match="one projection per pair"):
        kd.FeatureDistiller(
            student=student, teacher=teacher, pairs=[("teacher_hidden", "student_hidden")], projections=[None, None]
        )
    distiller = kd.FeatureDistiller(student=student, teacher=teacher, pairs=[("teacher_hidden", "student_hidden")])
    with pytest.raises(ValueError, match="feature_weight=-1"):
        distiller.compile(loss=SCCE, feature_weight=-1)


@pytest.mark.parametrize("method", ["hint", "fsp", "feature"])
def test_keras_file_round_trip_keeps_training(digit_images, tmp_path, method):
    (x, y), (x_test, y_test) = digit_images
    x, y = x[:256], y[:256]
    distiller = build(method, make_cnn("student", (8, 8)), make_cnn("teacher", (8, 8, 8)))
    distiller.fit_features(x, epochs=1, verbose=0)
    distiller.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "distiller.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)

    assert type(loaded) is type(distiller) and loaded.compiled
    assert loaded.feature_stage_done and loaded.feature_weight == distiller.feature_weight
    assert loaded.alpha == distiller.alpha and loaded.temperature == distiller.temperature
    own_keys = set(distiller.get_config()) - {"student", "teacher", "projections"}
    assert {k: loaded.get_config()[k] for k in own_keys} == {k: distiller.get_config()[k] for k in own_keys}
    assert loaded.pairs == distiller.pairs
    np.testing.assert_allclose(
        loaded.predict(x_test, verbose=0), distiller.predict(x_test, verbose=0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        loaded.evaluate(x_test, y_test, verbose=0), distiller.evaluate(x_test, y_test, verbose=0), rtol=1e-4
    )
    for a, b in zip(distiller.projections, loaded.projections):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    distiller.fit(x, y, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(distiller.student.get_weights(), loaded.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_student_exports_as_the_users_architecture(digit_images, tmp_path):
    (x, _), _ = digit_images
    student, teacher = make_cnn("student", (4, 4)), make_cnn("teacher", (8, 8))
    layer_names = [layer.name for layer in student.layers]
    distiller = kd.HintDistiller(
        student=student, teacher=teacher, hint_layer="teacher_conv2", guided_layer="student_conv2"
    )
    distiller.fit_hints(x[:64], epochs=1, verbose=0)
    path = os.path.join(tmp_path, "student.keras")
    distiller.student.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.name for layer in loaded.layers] == layer_names
    assert loaded.count_params() == student.count_params()
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), student.predict(x[:8], verbose=0), rtol=1e-6)


def test_hidden_state_loss_is_the_mean_over_real_tokens():
    x, labels, mask = token_batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    distiller = kd.FeatureDistiller(
        student=student,
        teacher=teacher,
        pairs=[("teacher_hidden", "student_hidden")],
        feature_loss="cosine",
        projections="auto",
    )
    distiller.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0, feature_weight=1.0)
    logs = distiller.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    teacher_hidden = kd.features.build_feature_extractor(teacher, ["teacher_hidden"])(x)["teacher_hidden"]
    student_hidden = kd.features.build_feature_extractor(student, ["student_hidden"])(x)["student_hidden"]
    projected = ops.convert_to_numpy(distiller.projections[0](student_hidden))
    teacher_hidden = ops.convert_to_numpy(teacher_hidden)
    cosine = np.sum(teacher_hidden * projected, -1) / (
        np.linalg.norm(teacher_hidden, axis=-1) * np.linalg.norm(projected, axis=-1)
    )
    np.testing.assert_allclose(logs["feature_loss"], masked_mean(1 - cosine, mask), rtol=1e-4)
    changed = dict(x, token_ids=np.where(mask, x["token_ids"], (x["token_ids"] + 5) % VOCABULARY).astype("int32"))
    after = distiller.evaluate(changed, labels, batch_size=8, verbose=0, return_dict=True)
    for key in logs:
        np.testing.assert_allclose(after[key], logs[key], rtol=1e-5, err_msg=key)


def test_keras_hub_hidden_states_every_second_layer():
    teacher, student = causal_lm(4, 16, "teacher"), causal_lm(2, 8, "student")
    pairs = kd.features.map_layers(
        [f"teacher_backbone/transformer_layer_{i}" for i in range(4)],
        [f"student_backbone/transformer_layer_{i}" for i in range(2)],
    )
    assert [t for t, _ in pairs] == ["teacher_backbone/transformer_layer_1", "teacher_backbone/transformer_layer_3"]
    x, labels, _ = token_batch(16)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    for loss in ("mse", "cosine"):
        distiller = kd.FeatureDistiller(
            student=student, teacher=teacher, pairs=pairs, feature_loss=loss, projections="auto"
        )
        assert all(isinstance(p, keras.layers.Dense) for p in distiller.projections)
        distiller.compile(optimizer="adam", loss=CE, alpha=0.5, feature_weight=1.0)
        history = distiller.fit(x, labels, batch_size=8, epochs=2, verbose=0).history
        assert np.all(np.isfinite(history["feature_loss"])) and history["feature_loss"][-1] > 0
    for old, new in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(new, old)
