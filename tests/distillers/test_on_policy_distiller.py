import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import LENGTH
from tests.conftest import VOCABULARY
from tests.conftest import causal_lm
from tests.conftest import token_batch
from tests.distillers.test_causal_lm_distiller import loss_and_gradients
from tests.losses.test_divergences import numpy_jsd
from tests.test_sequence_data import greedy_reference


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    # No dropout: the training step's forward pass equals the references'.
    teacher, student = causal_lm(2, 16, "teacher", dropout=0.0), causal_lm(1, 8, "student", dropout=0.0)
    for model in (teacher, student):
        # Larger (tied) embeddings: distributions far from uniform, so that
        # the divergence is far above float32 rounding.
        embedding = model.backbone.token_embedding.embeddings
        embedding.assign(embedding * 20.0)
    return teacher, student


def prompt_batch(count=8, seed=0):
    """Token inputs whose per-token weights mark a response after a prompt
    of 1 to 3 tokens (the label at t is token t + 1)."""
    x, labels, mask = token_batch(count, seed)
    mask = np.ones_like(mask)
    x["padding_mask"] = mask
    prompt_lengths = np.random.default_rng(seed).integers(1, 4, count)
    weights = (np.arange(LENGTH)[None, :] >= prompt_lengths[:, None] - 1).astype("float32")
    weights[:, -1] = 0.0
    return x, labels, weights, prompt_lengths


def test_lmbda_zero_is_the_supervised_token_level_distiller(models):
    teacher, student = models
    x, labels, weights, _ = prompt_batch()
    supervised = kd.Distiller(student=student, teacher=teacher)
    supervised.compile(
        optimizer="adam", loss=None, alpha=0.0, distillation_loss=kd.losses.GeneralizedJSD(beta=0.3, temperature=1.5)
    )
    on_policy = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=0.0)
    on_policy.compile(optimizer="adam", beta=0.3, temperature=1.5)
    expected_loss, expected = loss_and_gradients(supervised, x, labels, weights)
    loss, gradients = loss_and_gradients(on_policy, x, labels, weights)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    assert len(gradients) == len(expected) > 0
    for gradient, reference in zip(gradients, expected):
        np.testing.assert_allclose(gradient, reference, rtol=1e-5, atol=1e-7)


def test_on_policy_loss_is_the_jsd_on_the_students_own_tokens(models):
    teacher, student = models
    x, labels, weights, prompt_lengths = prompt_batch()
    distiller = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=1.0, sampling_temperature=0.0)
    distiller.compile(optimizer="adam", beta=0.3, temperature=1.5)

    seed = keras.ops.convert_to_tensor(distiller._sampling_seed.state.value)
    inputs, new_weights, _ = distiller.on_policy_batch(x, keras.ops.convert_to_tensor(weights), seed)
    tokens = keras.ops.convert_to_numpy(inputs["token_ids"])
    new_weights = keras.ops.convert_to_numpy(new_weights)
    # The prompts are kept and the rest is the student's greedy decoding,
    # through its cache.
    prompt_mask = np.arange(LENGTH)[None, :] < prompt_lengths[:, None]
    expected_tokens = greedy_reference(student, x["token_ids"], prompt_mask)
    np.testing.assert_array_equal(tokens, expected_tokens)
    generated = np.arange(LENGTH)[None, :] >= prompt_lengths[:, None]
    np.testing.assert_array_equal(new_weights[:, :-1], generated[:, 1:])
    assert not new_weights[:, -1].any()
    assert (tokens != x["token_ids"]).any()

    # The loss on the generated tokens, against NumPy.
    teacher_logits = keras.ops.convert_to_numpy(teacher(inputs, training=False))
    student_logits = keras.ops.convert_to_numpy(student(inputs, training=False))
    per_token = numpy_jsd(teacher_logits, student_logits, beta=0.3, temperature=1.5)
    expected_loss = (per_token * new_weights).sum() / new_weights.sum()
    loss, gradients = loss_and_gradients(distiller, x, labels, weights)
    assert expected_loss > 0.05
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)

    # The sampled tokens carry no gradient: the gradients are those of
    # supervised distillation on the fixed sample.
    supervised = kd.Distiller(student=student, teacher=teacher)
    supervised.compile(
        optimizer="adam", loss=None, alpha=0.0, distillation_loss=kd.losses.GeneralizedJSD(beta=0.3, temperature=1.5)
    )
    _, expected = loss_and_gradients(
        supervised, {"token_ids": tokens, "padding_mask": np.ones_like(tokens, bool)}, None, new_weights
    )
    for gradient, reference in zip(gradients, expected):
        np.testing.assert_allclose(gradient, reference, rtol=1e-4, atol=1e-7)


def test_samples_follow_the_students_distribution_and_stop_at_the_end_token(models):
    teacher, student = models
    count = 3000
    token_ids = np.full((count, LENGTH), 3, "int32")
    x = {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids, bool)}
    weights = np.ones((count, LENGTH), "float32")
    distiller = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=1.0, sampling_temperature=2.0, seed=1)
    seed = keras.ops.convert_to_tensor(distiller._sampling_seed.state.value)
    inputs, _, new_seed = distiller.on_policy_batch(x, keras.ops.convert_to_tensor(weights), seed)
    tokens = keras.ops.convert_to_numpy(inputs["token_ids"])
    assert not np.array_equal(keras.ops.convert_to_numpy(new_seed), keras.ops.convert_to_numpy(seed))
    logits = keras.ops.convert_to_numpy(student(x, training=False))[0, 0].astype("float64") / 2.0
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    frequencies = np.bincount(tokens[:, 1], minlength=VOCABULARY) / count
    np.testing.assert_allclose(frequencies, probabilities, atol=0.03)

    end = int(np.argmax(np.bincount(tokens[:, 1:].ravel(), minlength=VOCABULARY)))
    ending = kd.OnPolicyDistiller(
        student=student, teacher=teacher, lmbda=1.0, sampling_temperature=2.0, seed=1, end_token_id=end
    )
    inputs, new_weights, _ = ending.on_policy_batch(x, keras.ops.convert_to_tensor(weights), seed)
    tokens = keras.ops.convert_to_numpy(inputs["token_ids"])
    mask = keras.ops.convert_to_numpy(inputs["padding_mask"])
    new_weights = keras.ops.convert_to_numpy(new_weights)
    for row in range(200):
        ends = np.flatnonzero(tokens[row, 1:] == end)
        last = ends[0] + 1 if len(ends) else LENGTH - 1
        np.testing.assert_array_equal(mask[row], np.arange(LENGTH) <= last)
        np.testing.assert_array_equal(new_weights[row], np.arange(LENGTH) < last)


def test_several_end_tokens_end_a_sequence_at_the_first_of_them(models):
    teacher, student = models
    count = 400
    token_ids = np.full((count, LENGTH), 3, "int32")
    x = {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids, bool)}
    weights = keras.ops.convert_to_tensor(np.ones((count, LENGTH), "float32"))
    free = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=1.0, sampling_temperature=2.0, seed=1)
    seed = keras.ops.convert_to_tensor(free._sampling_seed.state.value)
    tokens = keras.ops.convert_to_numpy(free.on_policy_batch(x, weights, seed)[0]["token_ids"])
    counts = np.bincount(tokens[:, 1:].ravel(), minlength=VOCABULARY)
    ends = [int(token) for token in np.argsort(counts)[-2:]]
    ending = kd.OnPolicyDistiller(
        student=student, teacher=teacher, lmbda=1.0, sampling_temperature=2.0, seed=1, end_token_id=ends
    )
    inputs, new_weights, _ = ending.on_policy_batch(x, weights, seed)
    tokens = keras.ops.convert_to_numpy(inputs["token_ids"])
    mask = keras.ops.convert_to_numpy(inputs["padding_mask"])
    new_weights = keras.ops.convert_to_numpy(new_weights)
    stopped_by = set()
    for row in range(count):
        found = np.flatnonzero(np.isin(tokens[row, 1:], ends))
        last = found[0] + 1 if len(found) else LENGTH - 1
        if len(found):
            stopped_by.add(int(tokens[row, last]))
        np.testing.assert_array_equal(mask[row], np.arange(LENGTH) <= last)
        np.testing.assert_array_equal(new_weights[row], np.arange(LENGTH) < last)
    assert stopped_by == set(ends)
    assert ending.get_config()["end_token_id"] == ends


@pytest.mark.parametrize(
    "end_token_id, match",
    [([], "empty list"), ([1, VOCABULARY], r"end_token_id\[1\]"), (VOCABULARY + 5, "vocabulary has"), ("2", "int")],
)
def test_end_token_ids_are_checked(models, end_token_id, match):
    teacher, student = models
    with pytest.raises((ValueError, TypeError), match=match):
        kd.OnPolicyDistiller(student=student, teacher=teacher, end_token_id=end_token_id)


def test_fit_trains_the_student_only_and_round_trips(models, tmp_path):
    teacher, _ = models
    student = causal_lm(1, 8, "fresh_student")
    x, labels, weights, _ = prompt_batch(16)
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=0.5, seed=0)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), beta=0.5)
    seed_before = keras.ops.convert_to_numpy(distiller._sampling_seed.state.value).copy()
    history = distiller.fit(x, labels, sample_weight=weights, batch_size=4, epochs=3, verbose=0)
    losses = history.history["distillation_loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a) for b, a in zip(student_before, student.get_weights()))
    # 12 steps each drew a coin, and the on-policy ones their samples.
    assert not np.array_equal(seed_before, keras.ops.convert_to_numpy(distiller._sampling_seed.state.value))

    # An on-policy step draws the coin, then one sample per position after
    # the first: the sampled state is carried out of the step, not dropped.
    always = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=1.0, seed=0)
    always.compile(optimizer=keras.optimizers.Adam(1e-2), beta=0.5)
    before = keras.ops.convert_to_numpy(always._sampling_seed.state.value).copy()
    always.train_on_batch(x, labels, sample_weight=weights)
    after = keras.ops.convert_to_numpy(always._sampling_seed.state.value)
    assert int(after[1]) - int(before[1]) == LENGTH

    path = str(tmp_path / "on_policy.keras")
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, kd.OnPolicyDistiller)
    assert (loaded.lmbda, loaded.seed, loaded.sampling_temperature) == (0.5, 0, 1.0)
    assert loaded.distillation_loss.beta == 0.5
    np.testing.assert_allclose(loaded.student.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-6)
    loaded.fit(x, labels, sample_weight=weights, batch_size=8, epochs=1, verbose=0)


def test_bad_arguments_are_refused_with_the_fix(models):
    teacher, student = models
    with pytest.raises(ValueError, match="must be a keras-hub CausalLM.*keras_distill.Distiller"):
        kd.OnPolicyDistiller(student=keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), teacher=teacher)
    with pytest.raises(ValueError, match="lmbda"):
        kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=1.5)
    with pytest.raises(ValueError, match="sampling_temperature"):
        kd.OnPolicyDistiller(student=student, teacher=teacher, sampling_temperature=-1.0)
    distiller = kd.OnPolicyDistiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="no hard-label term.*alpha=0.5"):
        distiller.compile(loss="sparse_categorical_crossentropy", alpha=0.5)
    with pytest.raises(ValueError, match="`beta` or `distillation_loss`, not both"):
        distiller.compile(beta=0.2, distillation_loss="kl")
    with pytest.raises(ValueError, match="needs the labels"):
        distiller.compile(distillation_loss="dkd")
    with pytest.raises(ValueError, match="beta"):
        distiller.compile(beta=1.0)
    assert not distiller.compiled
    x, labels, weights, _ = prompt_batch()
    distiller.compile(beta=0.5)
    cache = kd.precompute_teacher_outputs(teacher, x, batch_size=4)
    with pytest.raises(ValueError, match="cached teacher outputs do not cover"):
        distiller.fit(x, kd.with_teacher_outputs(labels, cache), sample_weight=weights, verbose=0)


def test_evaluation_scores_the_given_tokens_without_sampling(models):
    """Sampling is for training: evaluate with lmbda=1 scores the batch as
    given, as lmbda=0 does."""
    teacher, student = models
    x, labels, weights, _ = prompt_batch()
    losses = []
    for lmbda in (0.0, 1.0):
        distiller = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=lmbda, sampling_temperature=0.0)
        distiller.compile(optimizer="adam", beta=0.3, temperature=1.5)
        losses.append(
            distiller.evaluate(x, labels, sample_weight=weights, batch_size=8, verbose=0, return_dict=True)["loss"]
        )
    assert losses[0] > 0.05
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
