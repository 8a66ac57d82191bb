import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from keras_distill.losses import DIST
from tests.conftest import log_softmax

RNG = np.random.default_rng(4)
TEACHER = (RNG.normal(size=(8, 6)) * 3).astype("float32")
STUDENT = (RNG.normal(size=(8, 6)) * 3).astype("float32")


def numpy_pearson(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0) + 1e-8)


def numpy_dist(teacher, student, beta, gamma, temperature):
    """Huang et al.'s DIST, in float64: correlations over classes, then over examples."""
    p_t = np.exp(log_softmax(np.float64(teacher) / temperature))
    p_s = np.exp(log_softmax(np.float64(student) / temperature))
    inter = 1 - numpy_pearson(p_s.T, p_t.T)  # one value per example
    intra = 1 - numpy_pearson(p_s, p_t).mean()
    return temperature**2 * (beta * inter.mean() + gamma * intra), temperature**2 * inter, temperature**2 * intra


@pytest.mark.parametrize("beta, gamma, temperature", [(1.0, 1.0, 1.0), (2.0, 0.5, 4.0)])
def test_matches_numpy(beta, gamma, temperature):
    expected, inter, intra = numpy_dist(TEACHER, STUDENT, beta, gamma, temperature)
    value = kd.losses.dist(TEACHER, STUDENT, beta=beta, gamma=gamma, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(value), expected, rtol=1e-4)
    loss = kd.losses.DIST(beta=beta, gamma=gamma, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(loss(TEACHER, STUDENT)), expected, rtol=1e-4)
    weights = np.linspace(0, 2, 8).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(TEACHER, STUDENT, sample_weight=weights)),
        np.mean(weights * (beta * inter + gamma * intra)),
        rtol=1e-4,
    )


def test_zero_for_a_matching_student_and_shift_invariant():
    assert float(ops.convert_to_numpy(kd.losses.dist(TEACHER, TEACHER))) == pytest.approx(0.0, abs=1e-5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(kd.losses.dist(TEACHER + 5.0, STUDENT - 2.0)),
        ops.convert_to_numpy(kd.losses.dist(TEACHER, STUDENT)),
        rtol=1e-4,
    )


def test_name_and_config():
    assert isinstance(kd.losses.get("dist"), kd.losses.DIST)
    loss = kd.losses.DIST(beta=2.0, gamma=3.0, temperature=4.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert (restored.beta, restored.gamma, restored.temperature) == (2.0, 3.0, 4.0)


def test_one_example_and_constant_logits_give_finite_gradients():
    # A last batch of one example: the correlation across the batch is
    # undefined, and its term is 0 rather than a NaN gradient.
    logits = np.random.default_rng(0).normal(size=(1, 10)).astype("float32")
    assert float(DIST()(logits, logits)) == pytest.approx(0.0, abs=1e-6)
    # A zero-initialized head gives constant logits, one example at a time.
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10, kernel_initializer="zeros")])
    student.compile(optimizer=keras.optimizers.SGD(0.1), loss=DIST())
    student.fit(np.ones((3, 4), "float32"), np.repeat(logits, 3, axis=0), batch_size=1, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in student.get_weights())


def test_a_last_batch_of_one_leaves_the_student_finite():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(512, 8)).astype("float32"), rng.integers(0, 3, 512)
    student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), distillation_loss="dist"
    )
    distiller.fit(x, y, batch_size=511, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in student.get_weights())


def test_two_examples_have_an_intra_class_term():
    """Across two examples each class's correlation is +1 or -1: the term
    exists (from one example up it is 0 only for a batch of one)."""
    teacher, student = TEACHER[:2], STUDENT[:2]
    expected, _, intra = numpy_dist(teacher, student, 1.0, 1.0, 1.0)
    assert intra > 0.1
    np.testing.assert_allclose(ops.convert_to_numpy(kd.losses.dist(teacher, student)), expected, rtol=1e-4)


def test_the_authors_epsilon_where_the_probabilities_barely_vary():
    """Near-uniform probabilities (logits of spread 1e-4) have norms of
    about 1e-5 after centering, so the authors' 1e-8 in the denominator of
    the correlation counts."""
    teacher, student = TEACHER * 3e-5, STUDENT * 3e-5
    expected, _, _ = numpy_dist(teacher, student, 1.0, 1.0, 1.0)
    np.testing.assert_allclose(ops.convert_to_numpy(kd.losses.dist(teacher, student)), expected, rtol=2e-3)
