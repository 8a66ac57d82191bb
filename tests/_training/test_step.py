"""Teacher targets (mixtures, class subsets, top-k) and token weights, through the Distiller."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from keras_distill._training import step
from tests.conftest import LENGTH
from tests.conftest import VOCABULARY
from tests.conftest import causal_lm
from tests.conftest import log_softmax
from tests.conftest import make_mlp
from tests.conftest import masked_mean
from tests.conftest import numpy_kl
from tests.conftest import numpy_sparse_ce
from tests.conftest import numpy_top_k_kl
from tests.conftest import token_batch
from tests.conftest import token_model


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def small_batch(digits):
    (x, y), _ = digits
    return x[:64], y[:64]


CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def predict(model, x):
    return ops.convert_to_numpy(model(x))


def test_several_teachers_distill_their_weighted_mixture(digits):
    x, _ = small_batch(digits)
    student = make_mlp(8, name="student")
    first, second = make_mlp(16, name="first"), make_mlp(24, name="second", softmax=True)
    distiller = kd.Distiller(student=student, teacher=[first, second], teacher_weights=[3, 1])
    distiller.compile(optimizer="sgd", loss=None, alpha=0.0, temperature=2.0)
    soft_first = np.exp(log_softmax(logits(first, x) / 2.0))
    soft_second = np.exp(log_softmax(np.log(logits(second, x)) / 2.0))
    mixture = 0.75 * soft_first + 0.25 * soft_second
    expected = 4.0 * np.sum(mixture * (np.log(mixture) - log_softmax(logits(student, x) / 2.0)), axis=-1).mean()
    logs = distiller.evaluate(x, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    assert distiller.teacher_output_kind == ["logits", "probabilities"]
    before = [w.copy() for model in (first, second) for w in model.get_weights()]
    distiller.fit(x, epochs=1, verbose=0)
    after = [w for model in (first, second) for w in model.get_weights()]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_a_mixture_of_teachers_is_taken_token_by_token():
    # (batch, tokens, classes): the softmax and the mixture over the classes of each token.
    rng = np.random.default_rng(0)
    first, second = (rng.normal(size=(2, 5, 7)).astype("float32") for _ in range(2))
    mixed = ops.convert_to_numpy(step.mixture_logits([first, second], [0.75, 0.25], 2.0))
    expected = 0.75 * np.exp(log_softmax(first / 2.0)) + 0.25 * np.exp(log_softmax(second / 2.0))
    assert mixed.shape == (2, 5, 7)
    np.testing.assert_allclose(np.exp(log_softmax(mixed / 2.0)), expected, rtol=1e-5, atol=1e-7)


def test_teacher_classes_are_taken_from_the_last_axis_of_every_token():
    teacher = np.arange(2 * 3 * 9, dtype="float32").reshape(2, 3, 9)
    chosen = ops.convert_to_numpy(step.select_classes(teacher, [7, 2, 5]))
    np.testing.assert_array_equal(chosen, teacher[..., [7, 2, 5]])
    assert step.select_classes(teacher, None) is teacher


def test_teacher_classes_select_and_renormalize(digits):
    x, y = small_batch(digits)
    student, teacher = make_mlp(8, name="student", classes=3), make_mlp(16, name="teacher")
    distiller = kd.Distiller(student=student, teacher=teacher, teacher_classes=[7, 2, 5])
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", alpha=0.0, temperature=3.0)
    expected = numpy_kl(logits(teacher, x)[:, [7, 2, 5]], logits(student, x), 3.0).mean()
    logs = distiller.evaluate(x, y % 3, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-5)


def test_loss_is_the_mean_over_real_tokens():
    x, labels, mask = token_batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=CE, weighted_metrics=["accuracy"], alpha=0.3, temperature=2.0)
    logs = distiller.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    student_logits, teacher_logits = predict(student, x), predict(teacher, x)
    hard = masked_mean(numpy_sparse_ce(labels.ravel(), student_logits.reshape(-1, VOCABULARY)).reshape(8, LENGTH), mask)
    soft = masked_mean(numpy_kl(teacher_logits, student_logits, 2.0), mask)
    np.testing.assert_allclose(logs["student_loss"], hard, rtol=1e-5)
    np.testing.assert_allclose(logs["distillation_loss"], soft, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(logs["loss"], 0.3 * hard + 0.7 * soft, rtol=1e-5)
    accuracy = masked_mean(np.argmax(student_logits, -1) == labels, mask)
    np.testing.assert_allclose(logs["accuracy"], accuracy, rtol=1e-5)


@pytest.mark.parametrize("as_dict", [False, True], ids=["token ids", "dict without a padding mask"])
def test_sequences_without_a_padding_mask_count_every_token(as_dict):
    x, labels, _ = token_batch()
    tokens = x["token_ids"]

    def model(width, name):
        inputs = keras.Input((LENGTH,), dtype="int32", name="token_ids")
        hidden = keras.layers.Embedding(VOCABULARY, width)(inputs)
        logits = keras.layers.Dense(VOCABULARY, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0))(hidden)
        return keras.Model({"token_ids": inputs} if as_dict else inputs, logits, name=name)

    student, teacher = model(4, "student"), model(8, "teacher")
    inputs = {"token_ids": tokens} if as_dict else tokens
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0)
    logs = distiller.evaluate(inputs, labels, batch_size=8, verbose=0, return_dict=True)
    soft = numpy_kl(predict(teacher, inputs), predict(student, inputs), 2.0).mean()
    np.testing.assert_allclose(logs["distillation_loss"], soft, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("trailing_axis", [False, True], ids=["labels (n, tokens)", "labels (n, tokens, 1)"])
def test_token_metrics_leave_out_padding_and_the_labels_the_loss_ignores(trailing_axis):
    x, _, mask = token_batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    # Labels the student gets right about half the time; every third token unlabelled.
    predicted = np.argmax(predict(student, x), -1)
    right = np.random.default_rng(1).random(predicted.shape) < 0.5
    labels = np.where(right, predicted, (predicted + 1) % VOCABULARY)
    labels = np.where(np.arange(LENGTH)[None, :] % 3 == 1, -1, labels)
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="weighted_accuracy")],
    )
    given = labels[..., None] if trailing_axis else labels
    logs = distiller.evaluate(x, given, batch_size=8, verbose=0, return_dict=True)
    hits = predicted == labels
    # As in Keras, only weighted metrics take the (padding) weights; both leave out the ignored labels.
    np.testing.assert_allclose(logs["accuracy"], masked_mean(hits, labels != -1), rtol=1e-6)
    np.testing.assert_allclose(logs["weighted_accuracy"], masked_mean(hits, mask & (labels != -1)), rtol=1e-6)


def test_padded_positions_do_not_count():
    x, labels, mask = token_batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0)
    before = distiller.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    changed = dict(x, token_ids=np.where(mask, x["token_ids"], (x["token_ids"] + 5) % VOCABULARY).astype("int32"))
    changed_labels = np.where(mask, labels, (labels + 3) % VOCABULARY)
    # Both models' logits at padded positions really change.
    assert not np.allclose(predict(student, changed)[~mask], predict(student, x)[~mask])
    assert not np.allclose(predict(teacher, changed)[~mask], predict(teacher, x)[~mask])
    after = distiller.evaluate(changed, changed_labels, batch_size=8, verbose=0, return_dict=True)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6, err_msg=key)
    # Without the mask, the same change moves the loss.
    unmasked = dict(changed, padding_mask=np.ones_like(mask))
    moved = distiller.evaluate(unmasked, changed_labels, batch_size=8, verbose=0, return_dict=True)
    assert abs(moved["distillation_loss"] - before["distillation_loss"]) > 1e-4


def test_per_token_sample_weight_is_a_mask_too():
    x, labels, mask = token_batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0)
    masked = distiller.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    full = dict(x, padding_mask=np.ones_like(mask))
    weighted = distiller.evaluate(
        full, labels, sample_weight=mask.astype("float32"), batch_size=8, verbose=0, return_dict=True
    )
    for key in masked:
        np.testing.assert_allclose(weighted[key], masked[key], rtol=1e-5, err_msg=key)


def test_training_on_tokens_leaves_the_teacher_alone():
    x, labels, _ = token_batch(32)
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=CE, alpha=0.5, distillation_loss="reverse_kl")
    history = distiller.fit(x, labels, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(after, before)


def test_top_k_in_the_distiller_live_and_cached():
    x, labels, mask = token_batch(32)
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    dense = kd.Distiller(student=student, teacher=teacher)
    dense.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0)
    full_k = kd.Distiller(student=student, teacher=teacher, teacher_top_k=VOCABULARY)
    full_k.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0)
    reference = dense.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    for key, value in full_k.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True).items():
        np.testing.assert_allclose(value, reference[key], rtol=1e-4, err_msg=key)

    initial = student.get_weights()
    live = kd.Distiller(student=student, teacher=teacher, teacher_top_k=4)
    live.compile(optimizer=keras.optimizers.SGD(0.5), loss=CE, alpha=0.3, temperature=2.0)
    expected = numpy_top_k_kl(predict(teacher, x), predict(student, x), 4, 2.0)
    logs = live.evaluate(x, labels, batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], masked_mean(expected, mask), rtol=1e-4)
    live_history = live.fit(x, labels, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    live_weights = student.get_weights()

    student.set_weights(initial)
    cache = kd.precompute_teacher_outputs(teacher, x, top_k=4)
    assert cache["top_k_indices"].shape == (32, LENGTH, 4) and cache["top_k_indices"].dtype == np.int32
    cached = kd.Distiller(student=student, teacher=teacher)
    cached.compile(optimizer=keras.optimizers.SGD(0.5), loss=CE, alpha=0.3, temperature=2.0)
    cached_history = cached.fit(
        x, kd.with_teacher_outputs(labels, cache), batch_size=8, epochs=2, shuffle=False, verbose=0
    ).history
    for key, values in live_history.items():
        np.testing.assert_allclose(cached_history[key], values, rtol=1e-4, err_msg=key)
    for a, b in zip(live_weights, student.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_keras_hub_gpt2_teacher_and_student():
    teacher, student = causal_lm(2, 16, "teacher"), causal_lm(1, 8, "student")
    x, labels, mask = token_batch(16)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=CE, alpha=0.5, distillation_loss=kd.losses.GeneralizedJSD(0.5))
    before = distiller.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    # Padded positions come last; changing them changes nothing (causal attention + mask).
    changed = dict(x, token_ids=np.where(mask, x["token_ids"], 0).astype("int32"))
    after = distiller.evaluate(changed, labels, batch_size=8, verbose=0, return_dict=True)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, err_msg=key)
    history = distiller.fit(x, labels, batch_size=8, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    for old, new in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(new, old)


def test_feature_distiller_distills_the_top_k_it_was_given():
    x, labels, mask = token_batch(16)
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    pairs = [("teacher_hidden", "student_hidden")]
    distiller = kd.FeatureDistiller(student=student, teacher=teacher, pairs=pairs, projections="auto", teacher_top_k=2)
    distiller.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0, feature_weight=0.0)
    logs = distiller.evaluate(x, labels, batch_size=16, verbose=0, return_dict=True)
    teacher_logits, student_logits = predict(teacher, x), predict(student, x)
    top_k = masked_mean(numpy_top_k_kl(teacher_logits, student_logits, 2, 2.0), mask)
    dense = masked_mean(numpy_kl(teacher_logits, student_logits, 2.0), mask)
    assert abs(top_k - dense) > 0.2 * dense  # the two objectives really differ here
    np.testing.assert_allclose(logs["distillation_loss"], top_k, rtol=1e-4)


def test_dense_cache_with_teacher_top_k_is_cut_to_the_top_k():
    x, labels, mask = token_batch(32)
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    initial = student.get_weights()
    live = kd.Distiller(student=student, teacher=teacher, teacher_top_k=4)
    live.compile(optimizer=keras.optimizers.SGD(0.5), loss=CE, alpha=0.3, temperature=2.0)
    live_history = live.fit(x, labels, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    live_weights = student.get_weights()

    student.set_weights(initial)
    dense_cache = kd.precompute_teacher_outputs(teacher, x)
    cached = kd.Distiller(student=student, teacher=teacher, teacher_top_k=4)
    cached.compile(optimizer=keras.optimizers.SGD(0.5), loss=CE, alpha=0.3, temperature=2.0)
    logs = cached.evaluate(x, kd.with_teacher_outputs(labels, dense_cache), batch_size=32, verbose=0, return_dict=True)
    expected = numpy_top_k_kl(predict(teacher, x), predict(student, x), 4, 2.0)
    np.testing.assert_allclose(logs["distillation_loss"], masked_mean(expected, mask), rtol=1e-4)
    cached_history = cached.fit(
        x, kd.with_teacher_outputs(labels, dense_cache), batch_size=8, epochs=2, shuffle=False, verbose=0
    ).history
    for key, values in live_history.items():
        np.testing.assert_allclose(cached_history[key], values, rtol=1e-4, err_msg=key)
    for a, b in zip(live_weights, student.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def numpy_of(value):
    return None if value is None else ops.convert_to_numpy(value)


TOKEN_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
PER_SAMPLE = np.array([0.5, 2.0, 0.0], "float32")
PER_TOKEN = np.array([[1, 0, 2, 1, 1], [0, 3, 1, 1, 0], [1, 1, 1, 0, 1]], "float32")


@pytest.mark.parametrize("padded", [False, True], ids=["no padding mask", "padding mask"])
@pytest.mark.parametrize("weight", [None, "per sample", "per token"])
def test_token_weights_against_numpy(padded, weight):
    """Metric weights: padding mask x sample weight, per token. Loss weights:
    the same x tokens / real tokens, where a token is real when it is not
    padding and its per-token weight (not a per-sample one) is not 0."""
    logits = ops.convert_to_tensor(np.zeros((3, 5, 4), "float32"))
    x = {"token_ids": np.zeros((3, 5), "int32")}
    if padded:
        x["padding_mask"] = TOKEN_MASK
    sample_weight = {None: None, "per sample": PER_SAMPLE, "per token": PER_TOKEN}[weight]
    loss_weights, metric_weights = step.token_weights(x, logits, sample_weight)

    mask = TOKEN_MASK if padded else np.ones((3, 5), bool)
    expected = mask * {None: 1.0, "per sample": PER_SAMPLE[:, None], "per token": PER_TOKEN}[weight]
    real = mask & (PER_TOKEN != 0) if weight == "per token" else mask
    np.testing.assert_allclose(numpy_of(metric_weights), expected, rtol=1e-6)
    np.testing.assert_allclose(numpy_of(loss_weights), expected * real.size / real.sum(), rtol=1e-6)


def test_token_weights_without_a_time_axis_are_the_sample_weight():
    logits = ops.zeros((3, 4))
    assert step.token_weights(None, logits, None) == (None, None)
    loss_weights, metric_weights = step.token_weights({"padding_mask": TOKEN_MASK}, logits, PER_SAMPLE)
    assert loss_weights is PER_SAMPLE and metric_weights is PER_SAMPLE


def test_token_weights_of_all_padding_are_zero_not_nan():
    x = {"token_ids": np.zeros((3, 5), "int32"), "padding_mask": np.zeros((3, 5), bool)}
    loss_weights, metric_weights = step.token_weights(x, ops.zeros((3, 5, 4)), None)
    np.testing.assert_array_equal(numpy_of(loss_weights), np.zeros((3, 5)))
    np.testing.assert_array_equal(numpy_of(metric_weights), np.zeros((3, 5)))


class _TeacherAndLabels(keras.losses.Loss):
    """A distillation loss that needs the labels: it records what it got."""

    needs_labels = True

    def call(self, y_true, y_pred):
        teacher, labels = y_true
        return ops.mean(teacher * 0.0 + ops.cast(ops.expand_dims(labels, -1), "float32"), axis=-1) + ops.mean(
            y_pred, axis=-1
        )


def test_response_losses_each_term_alone_and_both():
    rng = np.random.default_rng(0)
    teacher = ops.convert_to_tensor(rng.normal(2.0, 3.0, (6, 4)).astype("float32"))
    student = ops.convert_to_tensor(rng.normal(-1.0, 0.5, (6, 4)).astype("float32"))
    labels = ops.convert_to_tensor(np.arange(6) % 4)
    hard_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    soft_loss = kd.losses.SoftTargetKLDivergence(temperature=2.0)

    def reduce(loss, y_true, y_pred):
        return loss(y_true, y_pred)

    def as_float(value):
        assert ops.convert_to_numpy(value).dtype == np.float32
        return float(ops.convert_to_numpy(value))

    hard, soft = step.response_losses(hard_loss, soft_loss, labels, teacher, student, False, reduce)
    np.testing.assert_allclose(as_float(hard), float(hard_loss(labels, student)), rtol=1e-6)
    np.testing.assert_allclose(as_float(soft), float(soft_loss(teacher, student)), rtol=1e-6)

    hard, soft = step.response_losses(None, soft_loss, labels, teacher, student, False, reduce)
    assert as_float(hard) == 0.0
    np.testing.assert_allclose(as_float(soft), float(soft_loss(teacher, student)), rtol=1e-6)

    hard, soft = step.response_losses(hard_loss, None, labels, teacher, student, True, reduce)
    np.testing.assert_allclose(as_float(hard), float(hard_loss(labels, student)), rtol=1e-6)
    assert as_float(soft) == 0.0

    # standardize: both models' logits z-scored (unbiased std) for the distillation term only.
    def z_score(values):
        values = ops.convert_to_numpy(values)
        return (values - values.mean(-1, keepdims=True)) / values.std(-1, ddof=1, keepdims=True)

    hard, soft = step.response_losses(hard_loss, soft_loss, labels, teacher, student, True, reduce)
    np.testing.assert_allclose(as_float(hard), float(hard_loss(labels, student)), rtol=1e-6)
    expected = float(soft_loss(z_score(teacher), z_score(student)))
    assert abs(expected - float(soft_loss(teacher, student))) > 1e-2
    np.testing.assert_allclose(as_float(soft), expected, rtol=1e-4)

    # A loss that needs the labels gets (teacher, labels) as y_true.
    _, soft = step.response_losses(None, _TeacherAndLabels(), labels, teacher, student, False, reduce)
    expected = np.mean(np.arange(6) % 4) + ops.convert_to_numpy(student).mean()
    np.testing.assert_allclose(as_float(soft), expected, rtol=1e-5)
