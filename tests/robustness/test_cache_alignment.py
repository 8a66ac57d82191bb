"""7. Teacher caches stay aligned with their inputs, or are refused."""

import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp

tf = pytest.importorskip("tensorflow")


def test_a_dataset_from_a_generator_is_refused(digits):
    (x, y), _ = digits
    order = np.random.default_rng(0)

    def shuffled():  # a new order on every pass: the cache would drift
        for index in order.permutation(64):
            yield x[index], y[index]

    dataset = tf.data.Dataset.from_generator(
        shuffled, output_signature=(tf.TensorSpec((64,), tf.float32), tf.TensorSpec((), tf.int64))
    ).batch(16)
    with pytest.raises(ValueError, match="built from Python code.*from_generator"):
        kd.precompute_teacher_outputs(make_mlp(16, name="teacher"), dataset)


def test_an_infinite_dataset_is_an_error_not_a_hang(digits):
    (x, y), _ = digits
    dataset = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(16).repeat()
    with pytest.raises(ValueError, match="infinite dataset.*before .repeat\\(\\)"):
        kd.precompute_teacher_outputs(make_mlp(16, name="teacher"), dataset)
