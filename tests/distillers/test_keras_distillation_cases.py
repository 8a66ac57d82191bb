"""keras.distillation's own test cases (Keras 3.15,
`keras/src/distillation/distiller_test.py` and `distillation_loss_test.py`),
each with its keras_distill equivalent. The test names are Keras'; where the
two libraries differ on purpose (the teacher's `trainable` flag, the name of
the total loss, the meaning of `"kl_divergence"`), the test says so and checks
keras_distill's behaviour. Numbers are checked against NumPy where Keras'
tests only checked finiteness."""

import json

import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import numpy_kl


class SimpleTeacher(keras.Model):
    def __init__(self, vocab_size=10, hidden_dim=32, **kwargs):
        super().__init__(**kwargs)
        self.dense1 = keras.layers.Dense(hidden_dim, activation="relu")
        self.dense2 = keras.layers.Dense(vocab_size)

    def call(self, inputs, training=None):
        return self.dense2(self.dense1(inputs))


SimpleStudent = SimpleTeacher

RNG = np.random.default_rng(42)
X = RNG.random((20, 5)).astype("float32")
Y = RNG.integers(0, 10, (20,)).astype("int32")


def models():
    teacher, student = SimpleTeacher(10, 32, name="teacher"), SimpleStudent(10, 16, name="student")
    teacher(X[:2]), student(X[:2])
    return teacher, student


def distiller_of(teacher, student, distillation_loss=None, **compile_kwargs):
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        distillation_loss=distillation_loss or kd.losses.SoftTargetKLDivergence(temperature=2.0),
        **compile_kwargs,
    )
    return distiller


def sequential(prefix, units):
    return keras.Sequential(
        [keras.Input((20,))]
        + [
            keras.layers.Dense(width, activation="relu", name=f"{prefix}_dense_{i + 1}")
            for i, width in enumerate(units)
        ]
        + [keras.layers.Dense(10, name=f"{prefix}_output")],
        name=prefix,
    )


def test_distiller_initialization():
    teacher, student = models()
    distiller = distiller_of(teacher, student, student_loss_weight=0.5)
    # keras.distillation sets teacher.trainable = False; keras_distill leaves
    # the user's flag and freezes the teacher inside the distiller.
    assert teacher.trainable and student.trainable
    assert distiller.alpha == 0.5
    assert distiller.temperature == 2.0
    assert distiller.optimizer is not None and distiller.compiled
    assert not any(variable is t for variable in distiller.trainable_variables for t in teacher.variables)


def test_distiller_call():
    teacher, student = models()
    distiller = distiller_of(teacher, student)
    outputs = ops.convert_to_numpy(distiller(X))
    assert outputs.shape == (20, 10)
    np.testing.assert_allclose(outputs, ops.convert_to_numpy(student(X)), rtol=1e-6)


def test_teacher_freezing():
    teacher, student = models()
    before = [w.copy() for w in teacher.get_weights()]
    distiller_of(teacher, student).fit(X, Y, epochs=2, verbose=0)
    assert teacher.trainable
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_compatibility_validation():
    teacher, student = models()
    with pytest.raises(TypeError, match="`teacher` must be a keras.Model"):
        kd.Distiller(student=student, teacher="not_a_model")
    with pytest.raises(TypeError, match="`student` must be a keras.Model"):
        kd.Distiller(student="not_a_model", teacher=teacher)


def test_multi_distillation_loss_functionality():
    teacher, student = models()
    distiller = distiller_of(
        teacher,
        student,
        distillation_loss=[
            kd.losses.SoftTargetKLDivergence(temperature=3.0),
            kd.losses.SoftTargetKLDivergence(temperature=2.0),
        ],
        distillation_loss_weights=[0.7, 0.3],
        student_loss_weight=0.5,
    )
    assert len(distiller.distillation_loss.losses) == 2
    assert distiller.distillation_loss.weights == [0.7, 0.3]
    result = distiller.evaluate(X, Y, verbose=0, return_dict=True)
    zt, zs = ops.convert_to_numpy(teacher(X)), ops.convert_to_numpy(student(X))
    expected = 0.7 * np.mean(numpy_kl(zt, zs, 3.0)) + 0.3 * np.mean(numpy_kl(zt, zs, 2.0))
    np.testing.assert_allclose(result["distillation_loss"], expected, rtol=1e-5)
    history = distiller.fit(X[:10], Y[:10], epochs=1, verbose=0)
    # Keras' `total_loss` is `loss` here, as in every Keras model.
    assert {"loss", "student_loss", "distillation_loss"} <= set(history.history)


def test_multi_distillation_loss_validation():
    teacher, student = models()
    losses = [kd.losses.SoftTargetKLDivergence(temperature=3.0), kd.losses.SoftTargetKLDivergence(temperature=2.0)]
    distiller_of(teacher, student, distillation_loss=losses)
    with pytest.raises(ValueError, match="list of 2 numbers"):
        distiller_of(teacher, student, distillation_loss=losses, distillation_loss_weights=[1.0])


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_student_loss_weighting(weight):
    teacher, student = models()
    distiller = distiller_of(teacher, student, student_loss_weight=weight)
    result = distiller.evaluate(X[:5], Y[:5], verbose=0, return_dict=True)
    expected = weight * result["student_loss"] + (1 - weight) * result["distillation_loss"]
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-6)
    history = distiller.fit(X[:5], Y[:5], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_full_training_workflow():
    rng = np.random.default_rng(42)
    x_train, y_train = rng.random((100, 5)).astype("float32"), rng.integers(0, 10, 100)
    x_val, y_val = rng.random((20, 5)).astype("float32"), rng.integers(0, 10, 20)
    teacher, student = models()
    distiller = distiller_of(teacher, student, student_loss_weight=0.5)
    history = distiller.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=3, batch_size=16, verbose=0)
    for name in ("loss", "val_loss", "student_loss", "distillation_loss"):
        assert len(history.history[name]) == 3 and np.all(np.isfinite(history.history[name]))
    assert distiller.predict(x_val[:5], verbose=0).shape == (5, 10)
    before = [w.copy() for w in student.get_weights()]
    distiller.fit(x_train[:10], y_train[:10], epochs=1, verbose=0)
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(before, student.get_weights()))


def test_evaluation_workflow():
    teacher, student = models()
    distiller = distiller_of(teacher, student)
    distiller.fit(X[:10], Y[:10], epochs=1, verbose=0)
    results = distiller.evaluate(X, Y, verbose=0)
    assert isinstance(results, list) and len(results) == 4  # loss, accuracy, student_loss, distillation_loss
    assert np.all(np.isfinite(results))


def test_prediction_workflow():
    teacher, student = models()
    distiller = kd.Distiller(student=student, teacher=teacher)
    predictions = distiller.predict(X, verbose=0)
    assert predictions.shape == (20, 10) and np.all(np.isfinite(predictions))
    np.testing.assert_allclose(predictions, student.predict(X, verbose=0), rtol=1e-6)


def test_distiller_serialization_and_saving(tmp_path):
    teacher, student = sequential("teacher", (32, 16)), sequential("student", (16, 8))
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        "adam",
        loss="sparse_categorical_crossentropy",
        distillation_loss=kd.losses.SoftTargetKLDivergence(temperature=3.0),
        student_loss_weight=0.7,
    )
    config = distiller.get_config()
    assert {"teacher", "student"} <= set(config)
    json.dumps(config)
    rebuilt = kd.Distiller.from_config(config)
    assert rebuilt.student.name == "student"
    distiller.save(tmp_path / "distiller.keras")
    loaded = keras.saving.load_model(tmp_path / "distiller.keras")
    assert loaded.alpha == pytest.approx(0.7) and loaded.temperature == 3.0
    x = np.random.default_rng(0).random((8, 20)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), rtol=1e-6)
    loaded.fit(x, np.arange(8) % 10, epochs=1, verbose=0)


# distillation_loss_test.py


def test_logits_distillation_basic():
    teacher = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "float32")
    student = np.array([[2.0, 1.0, 4.0], [3.0, 6.0, 2.0]], "float32")
    loss = kd.losses.SoftTargetKLDivergence(temperature=3.0)
    value = float(ops.convert_to_numpy(loss(teacher, student)))
    np.testing.assert_allclose(value, np.mean(numpy_kl(teacher, student, 3.0)), rtol=1e-5)
    # Invariant to a constant added to either model's logits (Keras' default
    # "kl_divergence" is not).
    np.testing.assert_allclose(float(ops.convert_to_numpy(loss(teacher, student + 5.0))), value, rtol=1e-5)
    # Outputs that cannot be compared are refused before any training.
    incompatible = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="same shape"):
        kd.Distiller(student=incompatible, teacher=keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)]))


def test_feature_distillation_basic():
    teacher = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "float32")
    student = np.array([[1.1, 2.1, 3.1], [4.1, 5.1, 6.1]], "float32")
    loss = kd.losses.get_feature_loss("mse")
    np.testing.assert_allclose(float(ops.convert_to_numpy(loss(teacher, student))), 0.01, rtol=1e-4)
    with pytest.raises(ValueError, match="compares features of equal shape"):
        kd.losses.HintLoss().check_shapes((None, 3), (None, 4))


def end_to_end_models():
    teacher, student = sequential("teacher", (32, 16)), sequential("student", (32, 16))
    x = np.random.default_rng(0).random((32, 20)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, 32)
    return teacher, student, x, y


def test_logits_distillation_end_to_end():
    teacher, student, x, y = end_to_end_models()
    distiller = distiller_of(
        teacher, student, distillation_loss=kd.losses.SoftTargetKLDivergence(temperature=3.0), alpha=0.5
    )
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert history.history["loss"][-1] > 0 and np.isfinite(history.history["loss"][-1])
    assert distiller.predict(x[:5], verbose=0).shape == (5, 10)
    assert isinstance(distiller.student, keras.Model)


def test_feature_distillation_end_to_end():
    teacher, student, x, y = end_to_end_models()
    distiller = kd.FeatureDistiller(
        student=student, teacher=teacher, pairs=[("teacher_dense_1", "student_dense_1")], feature_loss="mse"
    )
    distiller.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], alpha=0.5)
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert {"loss", "student_loss", "distillation_loss", "feature_loss"} <= set(history.history)
    assert np.all(np.isfinite(history.history["feature_loss"]))


def test_multi_distillation_loss_distillation_end_to_end():
    teacher, student, x, y = end_to_end_models()
    distiller = kd.FeatureDistiller(
        student=student,
        teacher=teacher,
        pairs=[("teacher_dense_1", "student_dense_1"), ("teacher_dense_2", "student_dense_2")],
        pair_weights=[0.5, 0.3],
        feature_loss="mse",
    )
    distiller.compile(
        "adam",
        loss="sparse_categorical_crossentropy",
        distillation_loss=kd.losses.SoftTargetKLDivergence(temperature=3.0),
        feature_weight=1.0,
        alpha=0.5,
    )
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert len(distiller.pairs) == 2 and distiller.pair_weights == [0.5, 0.3]
