import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from keras_distill.losses import standardize_logits

RNG = np.random.default_rng(5)


def test_z_scores_with_the_unbiased_deviation():
    logits = (RNG.normal(size=(4, 7)) * 5 + 3).astype("float32")
    expected = (logits - logits.mean(-1, keepdims=True)) / (logits.std(-1, ddof=1, keepdims=True) + 1e-7)
    value = ops.convert_to_numpy(kd.losses.standardize_logits(logits))
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    # Invariant to shifting and scaling either model's logits.
    np.testing.assert_allclose(ops.convert_to_numpy(kd.losses.standardize_logits(3.0 * logits - 8.0)), value, atol=1e-5)
    sequence = RNG.normal(size=(2, 3, 7)).astype("float16")
    out = kd.losses.standardize_logits(sequence)
    assert ops.convert_to_numpy(out).dtype == np.float32 and out.shape == (2, 3, 7)


@pytest.mark.parametrize("loss", ["kl", "dkd"])
def test_constant_logits_train_to_finite_weights(loss):
    """A zero-initialized head (constant logits) once gave a NaN student."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 4, 64)
    student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, kernel_initializer="zeros")])
    teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, kernel_initializer="zeros")])
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss=loss,
        standardize_logits=True,
    )
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert all(np.all(np.isfinite(w)) for w in student.get_weights())


def test_one_class_standardizes_to_zeros():
    values = keras.ops.convert_to_numpy(standardize_logits(np.array([[3.0], [-1.0]], "float32")))
    np.testing.assert_array_equal(values, np.zeros((2, 1)))


def test_the_authors_epsilon_on_logits_of_tiny_spread():
    logits = (RNG.normal(size=(4, 7)) * 1e-6).astype("float32")
    centered = np.float64(logits) - np.float64(logits).mean(-1, keepdims=True)
    expected = centered / (centered.std(-1, ddof=1, keepdims=True) + 1e-7)
    np.testing.assert_allclose(ops.convert_to_numpy(standardize_logits(logits)), expected, rtol=1e-3, atol=1e-4)
