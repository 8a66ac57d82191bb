import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import numpy_kl

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_born_again_generations_and_ensemble(digits, tmp_path):
    (x, y), (x_test, y_test) = digits
    built = []

    def build(generation):
        built.append(generation)
        return make_mlp(16, name=f"generation_{generation}")

    born_again = kd.BornAgain(build, generations=3)
    born_again.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], alpha=0.5, temperature=2.0
    )
    histories = born_again.fit(x, y, epochs=[3, 2, 2], verbose=0)
    assert built == [0, 1, 2] and len(histories) == 3 and len(born_again.models) == 3
    # Each generation is taught by the one before it, not by generation 0.
    assert [(d.teacher, d.student) for d in born_again.distillers] == [
        (born_again.models[0], born_again.models[1]),
        (born_again.models[1], born_again.models[2]),
    ]
    logs = born_again.distillers[1].evaluate(x_test, y_test, batch_size=len(x_test), verbose=0, return_dict=True)
    teacher, student = (born_again.models[k].predict(x_test, verbose=0) for k in (1, 2))
    np.testing.assert_allclose(logs["distillation_loss"], numpy_kl(teacher, student, 2.0).mean(), rtol=1e-4)
    assert "distillation_loss" not in histories[0].history and "distillation_loss" in histories[1].history
    ensemble = born_again.ensemble()
    probabilities = ensemble.predict(x_test, verbose=0)
    expected = np.mean(
        [keras.ops.convert_to_numpy(keras.ops.softmax(m(x_test), axis=-1)) for m in born_again.models], axis=0
    )
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    accuracy = ensemble.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    np.testing.assert_allclose(accuracy, np.mean(expected.argmax(-1) == y_test), rtol=1e-6)
    path = str(tmp_path / "generation_2.keras")
    born_again.models[-1].save(path)
    np.testing.assert_allclose(
        keras.saving.load_model(path).predict(x_test, verbose=0),
        born_again.models[-1].predict(x_test, verbose=0),
        rtol=1e-6,
    )


def test_born_again_errors():
    with pytest.raises(ValueError, match="generations"):
        kd.BornAgain(lambda: make_mlp(8, name="m"), generations=1)
    with pytest.raises(TypeError, match="build_model"):
        kd.BornAgain("not a function")
    same = make_mlp(8, name="m")
    born_again = kd.BornAgain(lambda: same, generations=2)
    born_again.compile(loss=SCCE)
    with pytest.raises(ValueError, match="new model at each call"):
        born_again.fit(np.zeros((4, 64), "float32"), np.zeros((4,), "int32"), verbose=0)
