import os

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_cnn

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build(method, student, teacher):
    if method == "hint":
        distiller = kd.HintDistiller(student, teacher, "teacher_conv2", "student_conv1")
        distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE, metrics=["accuracy"], alpha=0.2, temperature=3.0, hint_weight=0.5)
    elif method == "fsp":
        pairs = [(("teacher_conv1", "teacher_conv2"), ("student_conv1", "student_conv2"))]
        distiller = kd.FSPDistiller(student, teacher, pairs, data_format="channels_last")
        distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE, metrics=["accuracy"], fsp_weight=0.5)
    else:
        distiller = kd.FeatureDistiller(
            student,
            teacher,
            [("teacher_conv2", "student_conv2")],
            feature_loss=kd.losses.AttentionTransfer(p=2),
            projections=[keras.layers.Conv2D(8, 1, name="projection")],
        )
        distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE, metrics=["accuracy"], feature_weight=50.0)
    return distiller


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
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), distiller.predict(x_test, verbose=0), rtol=1e-5, atol=1e-6)
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
    distiller = kd.HintDistiller(student, teacher, "teacher_conv2", "student_conv2")
    distiller.fit_hints(x[:64], epochs=1, verbose=0)
    path = os.path.join(tmp_path, "student.keras")
    distiller.student.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.name for layer in loaded.layers] == layer_names
    assert loaded.count_params() == student.count_params()
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), student.predict(x[:8], verbose=0), rtol=1e-6)
