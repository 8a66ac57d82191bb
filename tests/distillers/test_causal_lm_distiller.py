import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import BACKEND
from tests.conftest import LENGTH
from tests.conftest import causal_lm
from tests.conftest import token_batch


def loss_and_gradients(distiller, x, y, sample_weight):
    """The distiller's training loss on one batch and its gradients with
    respect to the student's trainable variables (dropout off)."""
    variables = distiller.student.trainable_variables

    def loss_of():
        y_pred = distiller(x, training=False)
        return distiller.compute_loss(x, y, y_pred, sample_weight=sample_weight)

    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of()
        gradients = tape.gradient(loss, [v.value for v in variables])
    elif BACKEND == "torch":
        for v in variables:
            v.value.grad = None
        loss = loss_of()
        loss.backward()
        gradients = [v.value.grad for v in variables]
    else:
        import jax

        def pure(values):
            mapping = list(zip(variables, values))
            with keras.StatelessScope(state_mapping=mapping):
                return loss_of()

        loss, gradients = jax.value_and_grad(pure)([v.value for v in variables])
    return float(keras.ops.convert_to_numpy(loss)), [keras.ops.convert_to_numpy(g) for g in gradients]


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return causal_lm(2, 16, "teacher"), causal_lm(1, 8, "student")


CASES = {
    "kl": dict(distillation_loss="kl", temperature=2.0),
    "reverse_kl": dict(distillation_loss="reverse_kl", temperature=1.0),
    "jsd": dict(distillation_loss="jsd", temperature=1.5),
    "dkd": dict(distillation_loss="dkd", temperature=4.0),
    "kl, standardized, labels only half": dict(
        distillation_loss="kl", temperature=2.0, standardize_logits=True, alpha=0.25
    ),
    "no labels": dict(distillation_loss="kl", temperature=2.0, alpha=0.0, loss=None),
}


@pytest.mark.parametrize(
    "case, chunk_size",
    # 4 does not divide the sequence (6 tokens): the last chunk is padded.
    [(case, 4) for case in CASES] + [("kl", 1), ("kl", LENGTH)],
)
def test_chunked_loss_and_gradients_equal_the_full_logits(models, case, chunk_size):
    teacher, student = models
    x, labels, mask = token_batch(8)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, labels.shape).astype("float32") * mask
    settings = {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "alpha": 0.5, **CASES[case]}
    y = None if settings["loss"] is None and case == "no labels" else labels
    dense = kd.Distiller(student=student, teacher=teacher)
    dense.compile(optimizer="adam", **settings)
    chunked = kd.CausalLMDistiller(student=student, teacher=teacher, chunk_size=chunk_size)
    chunked.compile(optimizer="adam", **settings)
    expected_loss, expected = loss_and_gradients(dense, x, y, weights)
    loss, gradients = loss_and_gradients(chunked, x, y, weights)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5, atol=1e-6)
    assert len(gradients) == len(expected) > 0
    for gradient, reference in zip(gradients, expected):
        np.testing.assert_allclose(gradient, reference, rtol=1e-4, atol=1e-6)
    assert any(np.max(np.abs(g)) > 0 for g in gradients)


def test_chunked_top_k_equals_the_dense_top_k(models):
    teacher, student = models
    x, labels, mask = token_batch(8)
    losses = []
    for distiller in (
        kd.Distiller(student=student, teacher=teacher, teacher_top_k=3),
        kd.CausalLMDistiller(student=student, teacher=teacher, teacher_top_k=3, chunk_size=4),
    ):
        distiller.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            alpha=0.5,
            temperature=2.0,
        )
        losses.append(loss_and_gradients(distiller, x, labels, mask.astype("float32")))
    np.testing.assert_allclose(losses[1][0], losses[0][0], rtol=1e-5)
    for gradient, reference in zip(losses[1][1], losses[0][1]):
        np.testing.assert_allclose(gradient, reference, rtol=1e-4, atol=1e-6)


def test_fit_follows_the_full_logit_distiller_and_leaves_the_teacher():
    x, labels, mask = token_batch(32)
    histories, students = [], []
    for chunked in (False, True):
        keras.utils.set_random_seed(0)
        teacher, student = causal_lm(2, 16, "teacher"), causal_lm(1, 8, "student")
        before = [np.array(w) for w in teacher.get_weights()]
        student_before = [np.array(w) for w in student.get_weights()]
        distiller = (
            kd.CausalLMDistiller(student=student, teacher=teacher, chunk_size=4)
            if chunked
            else kd.Distiller(student=student, teacher=teacher)
        )
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            alpha=0.5,
            temperature=1.0,
        )
        keras.utils.set_random_seed(1)
        history = distiller.fit(
            x, labels, sample_weight=mask.astype("float32"), epochs=3, batch_size=8, shuffle=False, verbose=0
        )
        histories.append(history.history)
        students.append(student)
        assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights()))
        assert not all(np.array_equal(a, b) for a, b in zip(student_before, student.get_weights()))
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-4)
    for chunked, dense in zip(students[1].get_weights(), students[0].get_weights()):
        np.testing.assert_allclose(chunked, dense, rtol=1e-3, atol=1e-5)
    assert distiller.predict(x, verbose=0).shape == (32, LENGTH, 12)


def test_what_a_chunked_loss_cannot_do_is_refused(models, digits):
    teacher, student = models
    distiller = kd.CausalLMDistiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="takes no `metrics`.*full"):
        distiller.compile(
            optimizer="adam", metrics=["accuracy"], loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    with pytest.raises(ValueError, match="correlates classes across the whole batch"):
        distiller.compile(
            optimizer="adam",
            distillation_loss="dist",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    with pytest.raises(ValueError, match="no `ignore_class`.*padding_mask"):
        distiller.compile(
            optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
        )
    with pytest.raises(ValueError, match="needs keras-hub CausalLM models"):
        kd.CausalLMDistiller(student=keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), teacher=teacher)
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, labels, _ = token_batch(8)
    cache = kd.precompute_teacher_outputs(teacher, x)
    with pytest.raises(ValueError, match="takes no cached teacher outputs"):
        distiller.fit(x, kd.with_teacher_outputs(labels, cache), epochs=1, verbose=0)
