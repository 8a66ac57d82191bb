"""4. Losses mean what they say."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import numpy_kl

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_a_loss_function_for_probabilities_is_refused_like_the_object():
    student, teacher = make_mlp(8, name="student"), make_mlp(16, name="teacher")
    distiller = kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="from_logits=False.*logits"):
        distiller.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy())
    with pytest.raises(ValueError, match="defaults to from_logits=False.*loss='sparse_categorical_crossentropy'"):
        distiller.compile(optimizer="sgd", loss=keras.losses.sparse_categorical_crossentropy)
    learner = kd.MutualLearner([make_mlp(8, name="a"), make_mlp(8, name="b")])
    with pytest.raises(ValueError, match="defaults to from_logits=False"):
        learner.compile(optimizer="sgd", loss=keras.losses.sparse_categorical_crossentropy)


def test_a_keras_cross_entropy_on_logits_is_refused_as_a_distillation_loss():
    distiller = kd.Distiller(student=make_mlp(8, name="student"), teacher=make_mlp(16, name="teacher"))
    with pytest.raises(ValueError, match="softened probabilities.*distillation_loss='cross_entropy'"):
        distiller.compile(
            optimizer="sgd", loss=SCCE, distillation_loss=keras.losses.CategoricalCrossentropy(from_logits=True)
        )
    # On probabilities it is the tutorial's loss, and it is accepted.
    distiller.compile(optimizer="sgd", loss=SCCE, distillation_loss=keras.losses.CategoricalCrossentropy())


def test_a_softmax_teacher_behind_a_reshape_is_read_as_probabilities(digits):
    (x, y), _ = digits
    x, y = x[:32], y[:32]
    inputs = keras.Input((64,))
    logits = keras.layers.Dense(10, name="logits")(keras.layers.Dense(16, activation="relu")(inputs))
    probabilities = keras.layers.Reshape((10,))(keras.layers.Softmax()(logits))
    teacher = keras.Model(inputs, probabilities, name="teacher")
    student = make_mlp(8, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    assert distiller.teacher_output_kind == "probabilities"
    distiller.compile(optimizer="sgd", loss=SCCE, alpha=0.0, temperature=2.0)
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    teacher_logits = keras.ops.convert_to_numpy(keras.Model(inputs, logits)(x))
    expected = numpy_kl(teacher_logits, keras.ops.convert_to_numpy(student(x)), 2.0).mean()
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4)


def test_a_softmax_teacher_trained_by_a_chain_learns_from_probabilities(digits):
    (x, y), _ = digits
    teacher = make_mlp(32, name="teacher", softmax=True)
    chain = kd.AssistantChain([teacher, make_mlp(8, name="student")], train_teacher=True)
    chain.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    chain.fit(x, y, epochs=[3, 1], verbose=0)
    assert teacher.loss.from_logits is False
    assert np.mean(np.argmax(teacher.predict(x, verbose=0), -1) == y) > 0.8
