"""9. Where Keras would say something unclear, keras_distill speaks first."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import BACKEND
from tests.conftest import make_mlp
from tests.conftest import make_pair

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_class_weight_with_cached_outputs(digits):
    (x, y), _ = digits
    x, y = x[:32], y[:32]
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE)
    cached = kd.with_teacher_outputs(y, kd.precompute_teacher_outputs(teacher, x))
    with pytest.raises(ValueError, match="class_weight.*cached teacher outputs.*sample_weight="):
        distiller.fit(x, cached, class_weight={0: 2.0}, verbose=0)
    distiller.fit(x, y, class_weight={i: 1.0 for i in range(10)}, verbose=0)  # live teacher: fine


def test_born_again_generations_that_share_a_name(digits):
    (x, y), _ = digits
    born_again = kd.BornAgain(lambda: make_mlp(8, name="same"), generations=2)
    born_again.compile(optimizer="adam", loss=SCCE)
    born_again.fit(x[:64], y[:64], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="share names.*name each one"):
        born_again.ensemble()


def test_born_again_given_a_model_instead_of_a_builder():
    model = make_mlp(8, name="model")
    with pytest.raises(TypeError, match="received the model 'model' itself.*clone_model"):
        kd.BornAgain(model)


def test_mutual_learning_with_one_hot_labels_and_accuracy(digits):
    (x, y), _ = digits
    a, b = make_pair()
    learner = kd.MutualLearner([a, b])
    learner.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    one_hot = keras.utils.to_categorical(y[:128], 10)
    learner.fit(x[:128], one_hot, epochs=2, verbose=0)
    logs = learner.evaluate(x[:128], one_hot, verbose=0, return_dict=True)
    for model in (a, b):
        right = np.mean(np.argmax(model.predict(x[:128], verbose=0), -1) == y[:128])
        np.testing.assert_allclose(logs[f"{model.name}_accuracy"], right, atol=1e-6)
    with pytest.raises(ValueError, match="look one-hot"):
        sparse = kd.MutualLearner([make_mlp(8, name="c"), make_mlp(8, name="d")])
        sparse.compile(optimizer="adam", loss=SCCE, metrics=["accuracy"])
        sparse.fit(x[:128], one_hot, verbose=0)


def test_backup_and_restore_with_a_new_distiller(digits, tmp_path):
    (x, y), _ = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=SCCE)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    history = distiller.fit(x[:128], y[:128], epochs=2, callbacks=[backup], verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"][-1])


@pytest.mark.skipif(BACKEND == "torch", reason="one backend is enough for a file check")
def test_a_damaged_keras_file(tmp_path):
    from keras_distill import distill_command as jobs

    path = tmp_path / "model.keras"
    make_mlp(8, name="m").save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="is not a Keras model file.*truncated"):
        jobs.run_distill(str(path), str(path), "digits", 1, str(tmp_path / "out"))
