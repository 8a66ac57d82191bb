import os

import keras
import numpy as np

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import make_pair


def test_keras_file_round_trip_keeps_training(digits, tmp_path):
    (x, y), (x_test, y_test) = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        alpha=0.2,
        distillation_loss=kd.losses.SoftTargetKLDivergence(temperature=3.0),
    )
    distiller.fit(x, y, epochs=1, verbose=0, callbacks=[kd.callbacks.AlphaScheduler(lambda epoch: 0.7)])
    path = os.path.join(tmp_path, "distiller.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)

    assert isinstance(loaded, kd.Distiller) and loaded.compiled
    assert loaded.alpha == 0.7 and loaded.temperature == 3.0
    assert loaded.teacher.trainable is False
    assert int(loaded.optimizer.iterations.numpy()) == int(distiller.optimizer.iterations.numpy())
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), distiller.predict(x_test, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(
        loaded.evaluate(x_test, y_test, verbose=0), distiller.evaluate(x_test, y_test, verbose=0), rtol=1e-5
    )
    # Same weights and optimizer state: one more epoch agrees, with no compile() call.
    distiller.fit(x, y, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(distiller.student.get_weights(), loaded.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_config_round_trip():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher, teacher_outputs="logits", name="d")
    restored = kd.Distiller.from_config(distiller.get_config())
    assert restored.name == "d" and restored.teacher_outputs == "logits"
    assert [layer.name for layer in restored.student.layers] == [layer.name for layer in student.layers]
    assert restored.get_config() == distiller.get_config()


def test_compile_config_round_trip():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss="sparse_categorical_crossentropy",
        distillation_loss=keras.losses.KLDivergence(),
        alpha=0.25,
        temperature=6.0,
    )
    other = kd.Distiller(student=make_mlp(name="s2"), teacher=make_mlp(name="t2"))
    other.compile_from_config(distiller.get_compile_config())
    assert other.alpha == 0.25 and other.temperature == 6.0
    assert isinstance(other.optimizer, keras.optimizers.SGD)
    np.testing.assert_allclose(float(other.optimizer.learning_rate.numpy()), 0.05, rtol=1e-6)
    assert isinstance(other._distillation_loss, keras.losses.KLDivergence)


def test_student_saves_as_its_own_architecture(digits, tmp_path):
    (x, y), (x_test, _) = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    distiller.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "student.keras")
    distiller.student.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(student)
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), student.predict(x_test, verbose=0), rtol=1e-6)
