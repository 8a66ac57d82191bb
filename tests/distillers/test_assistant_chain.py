import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def weights(model):
    return [w.copy() for w in model.get_weights()]


def test_chain_distills_stage_by_stage(digits, tmp_path):
    (x, y), (x_test, y_test) = digits
    teacher, assistant, student = (
        make_mlp(32, name="teacher"),
        make_mlp(16, name="assistant"),
        make_mlp(8, name="student"),
    )
    chain = kd.AssistantChain([teacher, assistant, student], train_teacher=True)
    optimizer = keras.optimizers.Adam(5e-3)
    chain.compile(
        optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"], alpha=0.1, temperature=4.0
    )
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.model.name)

    histories = chain.fit(x, y, epochs=[3, 2, 1], callbacks=[Recorder()], validation_data=(x_test, y_test), verbose=0)
    assert [len(h.history["loss"]) for h in histories] == [3, 2, 1]
    assert "val_accuracy" in histories[2].history and "distillation_loss" in histories[2].history
    assert seen == ["teacher", "distiller", "distiller"]
    assert [d.teacher for d in chain.distillers] == [teacher, assistant]
    assert [d.student for d in chain.distillers] == [assistant, student]
    # A fresh optimizer per stage, none of them the one passed in.
    optimizers = [teacher.optimizer] + [d.optimizer for d in chain.distillers]
    assert len({id(o) for o in optimizers}) == 3 and all(o is not optimizer for o in optimizers)
    assert all(float(o.learning_rate.numpy()) == pytest.approx(5e-3) for o in optimizers)
    # Each stage froze its teacher for its own steps only.
    assert teacher.trainable is True and assistant.trainable is True
    for distiller in chain.distillers:
        assert not {id(v) for v in distiller.teacher.variables} & {id(v) for v in distiller.trainable_variables}
    assert histories[0].history["accuracy"][-1] > 0.5
    path = str(tmp_path / "student.keras")
    chain.student.save(path)
    np.testing.assert_allclose(
        keras.saving.load_model(path).predict(x_test, verbose=0), student.predict(x_test, verbose=0), rtol=1e-6
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(chain))
    assert isinstance(restored, kd.AssistantChain) and restored.train_teacher
    assert [m.name for m in restored.models] == ["teacher", "assistant", "student"]


def test_chain_keeps_earlier_models_fixed(digits):
    (x, y), _ = digits
    teacher, assistant, student = (
        make_mlp(32, name="teacher"),
        make_mlp(16, name="assistant"),
        make_mlp(8, name="student"),
    )
    teacher_before = weights(teacher)
    chain = kd.AssistantChain([teacher, assistant, student])
    chain.compile(optimizer=lambda: keras.optimizers.SGD(0.1), loss=SCCE, alpha=0.5)
    chain.fit(x[:256], y[:256], epochs=1, verbose=0)
    for a, b in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_chain_errors():
    a, b = make_mlp(8, name="a"), make_mlp(16, name="b")
    with pytest.raises(ValueError, match="at least a teacher and a student"):
        kd.AssistantChain([a])
    with pytest.raises(ValueError, match="passed twice"):
        kd.AssistantChain([a, b, a])
    with pytest.raises(ValueError, match="same shape"):
        kd.AssistantChain([a, make_mlp(4, name="c", classes=3)])
    chain = kd.AssistantChain([a, b])
    with pytest.raises(ValueError, match="before compile"):
        chain.fit(np.zeros((2, 64)), np.zeros((2,)))
    chain.compile(loss=SCCE)
    with pytest.raises(ValueError, match="`epochs` has 3 entries but there are 1 stages"):
        chain.fit(np.zeros((2, 64)), np.zeros((2,)), epochs=[1, 2, 3])
