"""What the per-token mean is under Keras' gradient accumulation
(`keras.optimizers.*(gradient_accumulation_steps=n)`).

Keras averages the gradients of n micro-batches, each computed from that
micro-batch's own loss; a step cannot see the real-token counts of the
micro-batches still to come, so the per-token mean is taken per
micro-batch. These tests pin what the docs say: the update is that of the
mean of the micro-batches' token means, which equals the token mean of the
whole accumulated batch when every micro-batch has as many real tokens.
"""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import LENGTH
from tests.conftest import VOCABULARY
from tests.conftest import causal_lm
from tests.conftest import token_model

LEARNING_RATE = 0.5


def batches(real_tokens):
    """Two rows per micro-batch, with `real_tokens[i]` real tokens in
    micro-batch i (a padding mask); labels and inputs at random."""
    rng = np.random.default_rng(0)
    rows = []
    for count in real_tokens:
        mask = np.zeros((2, LENGTH), bool)
        mask.ravel()[: count // 2] = True
        mask[1, : count - count // 2] = True
        rows.append(mask)
    mask = np.concatenate(rows)
    token_ids = rng.integers(0, VOCABULARY, mask.shape).astype("int32")
    labels = rng.integers(0, VOCABULARY, mask.shape)
    return {"token_ids": token_ids, "padding_mask": mask}, labels


def make(kind, accumulate):
    keras.utils.set_random_seed(1)
    if kind == "Distiller":
        student, teacher = token_model(8, "student"), token_model(16, "teacher")
        distiller = kd.Distiller(student=student, teacher=teacher)
    else:
        student, teacher = causal_lm(1, 8, "student", dropout=0.0), causal_lm(1, 16, "teacher", dropout=0.0)
        distiller = kd.CausalLMDistiller(student=student, teacher=teacher, chunk_size=4)
    optimizer = keras.optimizers.SGD(LEARNING_RATE, gradient_accumulation_steps=accumulate)
    distiller.compile(optimizer, loss="sparse_categorical_crossentropy", alpha=0.5, temperature=2.0)
    return distiller, student


def step(kind, x, labels, *, accumulate=None, batch_size=2, start=None):
    distiller, student = make(kind, accumulate)
    if start is not None:
        student.set_weights(start)
    before = [w.copy() for w in student.get_weights()]
    distiller.fit(x, labels, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return [after - w for after, w in zip(student.get_weights(), before)], before


def largest_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", ["Distiller", "CausalLMDistiller"])
def test_accumulation_averages_the_micro_batches_token_means(kind):
    x, labels = batches([2, 11])  # 2 and 11 real tokens
    accumulated, start = step(kind, x, labels, accumulate=2)

    def part(rows):
        return {key: value[rows] for key, value in x.items()}, labels[rows]

    first, _ = step(kind, *part(slice(0, 2)), start=start)
    second, _ = step(kind, *part(slice(2, 4)), start=start)
    whole, _ = step(kind, x, labels, batch_size=4, start=start)
    mean_of_means = [(a + b) / 2 for a, b in zip(first, second)]
    assert largest_difference(accumulated, mean_of_means) < 1e-5
    # Not the token mean of the 13 tokens: the 2-token micro-batch weighs
    # as much as the 11-token one.
    assert largest_difference(accumulated, whole) > 100 * largest_difference(accumulated, mean_of_means)


@pytest.mark.parametrize("kind", ["Distiller", "CausalLMDistiller"])
def test_equal_token_counts_give_the_whole_batch_token_mean(kind):
    x, labels = batches([7, 7])
    accumulated, start = step(kind, x, labels, accumulate=2)
    whole, _ = step(kind, x, labels, batch_size=4, start=start)
    assert largest_difference(accumulated, whole) < 1e-5
