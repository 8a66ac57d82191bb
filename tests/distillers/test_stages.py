import keras
import numpy as np
import pytest

from keras_distill.distillers.stages import StageConfig
from keras_distill.distillers.stages import optimizer_factory
from keras_distill.distillers.stages import per_stage
from keras_distill.distillers.stages import per_stage_callbacks
from tests.conftest import make_mlp


@pytest.mark.parametrize(
    "optimizer",
    [
        "sgd",
        {"class_name": "SGD", "config": {"learning_rate": 0.25}},
        keras.optimizers.SGD(0.25),
        lambda: keras.optimizers.SGD(0.25),
    ],
)
def test_every_stage_gets_a_new_optimizer(optimizer):
    factory = optimizer_factory(optimizer)
    first, second = factory(), factory()
    assert isinstance(first, keras.optimizers.SGD) and first is not second
    if not isinstance(optimizer, str):
        assert float(first.learning_rate) == pytest.approx(0.25)


def test_an_optimizer_of_another_type_is_refused():
    with pytest.raises(TypeError, match=r"Received: optimizer=3"):
        optimizer_factory(3)


def test_per_stage_values_and_callbacks():
    assert per_stage(2, 3, "epochs") == [2, 2, 2]
    assert per_stage([1, 2], 2, "epochs") == [1, 2]
    with pytest.raises(ValueError, match="`epochs` has 3 entries but there are 2 stages"):
        per_stage([1, 2, 3], 2, "epochs")
    stop = keras.callbacks.EarlyStopping()
    assert per_stage_callbacks(None, 2) == [[], []]
    assert per_stage_callbacks([stop], 2) == [[stop], [stop]]
    assert per_stage_callbacks([[stop], []], 2) == [[stop], []]


def test_stage_config_before_and_after_compile():
    config = StageConfig()
    with pytest.raises(ValueError, match=r"Chain.fit\(\) was called before compile\(\)"):
        config.check("Chain")
    config.set(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"], alpha=0.3, temperature=2.0
    )
    config.check("Chain")
    student, teacher = make_mlp(4, name="student"), make_mlp(8, name="teacher")
    first, second = config.distiller(student, teacher), config.distiller(student, teacher)
    assert first.alpha == pytest.approx(0.3) and first.temperature == pytest.approx(2.0)
    assert first.optimizer is not second.optimizer


def test_supervised_stage_reads_probabilities_from_a_softmax_teacher():
    config = StageConfig()
    config.set("sgd", "sparse_categorical_crossentropy", None, alpha=0.5)
    teacher = config.supervised(make_mlp(8, name="teacher", softmax=True))
    assert teacher.loss.get_config()["from_logits"] is False
    logits_model = config.supervised(make_mlp(8, name="other"))
    assert logits_model.loss.get_config()["from_logits"] is True
    x, y = np.random.default_rng(0).normal(size=(8, 64)).astype("float32"), np.arange(8) % 10
    assert np.isfinite(teacher.train_on_batch(x, y))

    config.set("sgd", keras.losses.MeanSquaredError(), None)
    with pytest.raises(ValueError, match="has no from_logits setting"):
        config.supervised(make_mlp(8, name="softmax_teacher", softmax=True))
