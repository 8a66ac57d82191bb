"""kd.on_policy_divergence and kd.callbacks.OnPolicyEvaluation: the
teacher's judgement of the student's own samples."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import LENGTH
from tests.conftest import causal_lm
from tests.conftest import log_softmax
from tests.distillers.test_on_policy_distiller import models  # noqa: F401  (fixture)
from tests.distillers.test_on_policy_distiller import prompt_batch
from tests.test_sequence_data import greedy_reference


def numpy_judgement(student, teacher, x, weights):
    """Greedy continuations after each prompt written out, then the mean
    reverse KL and teacher NLL over the generated tokens, in NumPy."""
    first = np.argmax(weights != 0, axis=1)
    prompt = np.arange(LENGTH)[None, :] <= first[:, None]
    tokens = greedy_reference(student, x["token_ids"], prompt)
    inputs = {"token_ids": tokens, "padding_mask": np.ones_like(prompt)}
    s = log_softmax(keras.ops.convert_to_numpy(student(inputs, training=False)).astype("float64"))
    t = log_softmax(keras.ops.convert_to_numpy(teacher(inputs, training=False)).astype("float64"))
    scored = np.concatenate([~prompt[:, 1:], np.zeros_like(prompt[:, :1])], axis=1)
    reverse_kl = (np.exp(s) * (s - t)).sum(-1)
    nll = -np.take_along_axis(t[:, :-1], tokens[:, 1:, None], -1)[..., 0]
    nll = np.concatenate([nll, np.zeros_like(nll[:, :1])], axis=1)
    return reverse_kl[scored].mean(), nll[scored].mean(), scored.sum()


def test_greedy_judgement_equals_numpy(models):  # noqa: F811
    teacher, student = models
    x, _, weights, _ = prompt_batch()
    got = kd.on_policy_divergence(student, teacher, x, weights, batch_size=3, sampling_temperature=0.0)
    reverse_kl, nll, tokens = numpy_judgement(student, teacher, x, weights)
    assert got["tokens"] == tokens
    np.testing.assert_allclose(got["reverse_kl"], reverse_kl, rtol=1e-4)
    np.testing.assert_allclose(got["teacher_nll"], nll, rtol=1e-4)
    assert reverse_kl > 0.1  # far from 0: the two models differ


def test_sampled_judgement_is_reproducible_and_zero_for_the_teacher_itself(models):  # noqa: F811
    teacher, student = models
    x, _, weights, _ = prompt_batch(16, seed=1)
    first = kd.on_policy_divergence(student, teacher, x, weights, seed=3)
    assert kd.on_policy_divergence(student, teacher, x, weights, seed=3) == first
    assert kd.on_policy_divergence(student, teacher, x, weights, seed=4) != first
    itself = kd.on_policy_divergence(teacher, teacher, x, weights, seed=3)
    assert abs(itself["reverse_kl"]) < 1e-5 and itself["teacher_nll"] > 0
    without_weights = kd.on_policy_divergence(student, teacher, x, seed=3)
    assert without_weights["tokens"] == 16 * (LENGTH - 1)
    with pytest.raises(ValueError, match="no token to sample"):
        kd.on_policy_divergence(student, teacher, x, np.zeros_like(weights) + np.eye(1, LENGTH, LENGTH - 1))


@pytest.mark.parametrize("kind", ["Distiller", "OnPolicyDistiller"])
def test_the_callback_logs_the_judgement_every_epoch(models, kind):  # noqa: F811
    teacher, student = models
    x, labels, weights, _ = prompt_batch(16, seed=2)
    held_out, _, held_weights, _ = prompt_batch(8, seed=3)
    # A copy to train, the module's student left as the other tests use it.
    trained = causal_lm(1, 8, "trained", dropout=0.0)
    trained.set_weights(student.get_weights())
    before = kd.on_policy_divergence(trained, teacher, held_out, held_weights, seed=5)
    distiller = getattr(kd, kind)(student=trained, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=None, alpha=0.0, temperature=1.0)
    callback = kd.callbacks.OnPolicyEvaluation(held_out, held_weights, seed=5)
    history = distiller.fit(x, labels, sample_weight=weights, epochs=3, batch_size=8, verbose=0, callbacks=[callback])
    logged = history.history["val_on_policy_reverse_kl"]
    assert len(logged) == 3 and len(history.history["val_on_policy_teacher_nll"]) == 3
    after = kd.on_policy_divergence(trained, teacher, held_out, held_weights, seed=5)
    np.testing.assert_allclose(logged[-1], after["reverse_kl"], rtol=1e-5)
    assert after["reverse_kl"] < before["reverse_kl"]


def test_the_callback_every_n_epochs_and_its_own_judge(models):  # noqa: F811
    teacher, student = models
    x, labels, weights, _ = prompt_batch(8, seed=4)
    held_out, _, held_weights, _ = prompt_batch(4, seed=5)
    trained = causal_lm(1, 8, "trained", dropout=0.0)
    trained.set_weights(student.get_weights())
    distiller = kd.Distiller(student=trained, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=None, alpha=0.0, temperature=1.0)
    # Judged by the student itself: a reverse KL of 0, whatever the samples.
    callback = kd.callbacks.OnPolicyEvaluation(held_out, held_weights, teacher=trained, every=2, seed=1)
    history = distiller.fit(x, labels, sample_weight=weights, epochs=3, batch_size=8, verbose=0, callbacks=[callback])
    logged = history.history["val_on_policy_reverse_kl"]
    assert len(logged) == 2  # epochs 2 and 3 (the last), not 1
    assert all(abs(value) < 1e-5 for value in logged)
    with pytest.raises(ValueError, match="every"):
        kd.callbacks.OnPolicyEvaluation(held_out, every=0)
