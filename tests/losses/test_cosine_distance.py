import keras
import numpy as np

from keras_distill.losses.cosine_distance import CosineDistance
from keras_distill.losses.cosine_distance import cosine_distance


def numpy_cosine_distance(teacher, student):
    teacher, student = np.float64(teacher), np.float64(student)
    dot = np.sum(teacher * student, axis=-1)
    norms = np.linalg.norm(teacher, axis=-1) * np.linalg.norm(student, axis=-1)
    return 1.0 - dot / norms


def test_per_position_against_numpy():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(2, 3, 5, 8)).astype("float32")
    values = keras.ops.convert_to_numpy(cosine_distance(teacher, student))
    assert values.shape == (3, 5) and values.dtype == np.float32
    np.testing.assert_allclose(values, numpy_cosine_distance(teacher, student), rtol=1e-5, atol=1e-6)


def test_direction_only():
    vector = np.array([[1.0, -2.0, 0.5]], "float32")
    same = keras.ops.convert_to_numpy(cosine_distance(vector, 7.0 * vector))
    opposite = keras.ops.convert_to_numpy(cosine_distance(vector, -0.1 * vector))
    orthogonal = keras.ops.convert_to_numpy(cosine_distance(np.array([[1.0, 0.0]]), np.array([[0.0, 3.0]])))
    np.testing.assert_allclose(same, [0.0], atol=1e-6)
    np.testing.assert_allclose(opposite, [2.0], atol=1e-6)
    np.testing.assert_allclose(orthogonal, [1.0], atol=1e-6)


def test_loss_weights_positions_and_round_trips():
    rng = np.random.default_rng(1)
    teacher, student = rng.normal(size=(2, 4, 6)).astype("float32")
    weights = np.array([1.0, 0.0, 2.0, 0.5], "float32")
    loss = CosineDistance()
    expected = np.sum(numpy_cosine_distance(teacher, student) * weights) / 4
    np.testing.assert_allclose(float(loss(teacher, student, sample_weight=weights)), expected, rtol=1e-5)
    restored = CosineDistance.from_config(loss.get_config())
    assert restored.name == "cosine_distance"
    np.testing.assert_allclose(
        float(restored(teacher, student)), np.mean(numpy_cosine_distance(teacher, student)), rtol=1e-5
    )


def test_tiny_features_keep_their_direction():
    """Features of norm 1e-5, or 1e-9 (a layer near zero), are compared by
    direction like any others: the normalization's floor (1e-12) is far
    below them, where Keras' default (1e-7) is not."""
    rng = np.random.default_rng(2)
    teacher, student = rng.normal(size=(2, 5, 8)).astype("float32")
    expected = keras.ops.convert_to_numpy(cosine_distance(teacher, student))
    for scale in (3e-6, 3e-10):
        tiny = keras.ops.convert_to_numpy(cosine_distance(teacher * scale, student * scale))
        np.testing.assert_allclose(tiny, expected, rtol=1e-4, atol=1e-5, err_msg=str(scale))
