"""Token-level distillation: (batch, sequence, vocabulary) outputs, padding
masks, reverse KL / generalized JSD, top-k teacher outputs."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import log_softmax
from tests.conftest import numpy_kl
from tests.conftest import numpy_sparse_ce

VOCABULARY, LENGTH = 12, 6
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def token_model(width, name):
    """Logits per token from keras-hub style inputs; the padding mask is an
    input the model ignores, so padded positions get real logits."""
    token_ids = keras.Input((LENGTH,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((LENGTH,), dtype="bool", name="padding_mask")
    hidden = keras.layers.Embedding(VOCABULARY, width, name=f"{name}_embedding")(token_ids)
    hidden = keras.layers.Dense(width, activation="tanh", name=f"{name}_hidden")(hidden)
    logits = keras.layers.Dense(
        VOCABULARY, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0), name=f"{name}_logits"
    )(hidden)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, logits, name=name)


def causal_lm(layers, width, name, vocabulary=VOCABULARY):
    """A keras-hub GPT-2 task model on pre-tokenized inputs."""
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary, num_layers=layers, num_heads=2, hidden_dim=width,
        intermediate_dim=2 * width, max_sequence_length=16, name=f"{name}_backbone",
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None, name=name)


def batch(count=8, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(0, VOCABULARY, (count, LENGTH)).astype("int32")
    lengths = rng.integers(2, LENGTH + 1, count)
    mask = np.arange(LENGTH)[None, :] < lengths[:, None]
    labels = rng.integers(0, VOCABULARY, (count, LENGTH))
    return {"token_ids": token_ids, "padding_mask": mask}, labels, mask


def predict(model, x):
    return ops.convert_to_numpy(model(x))


def masked_mean(values, mask):
    return float(np.sum(values * mask) / np.sum(mask))


def test_loss_is_the_mean_over_real_tokens():
    x, labels, mask = batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    distiller = kd.Distiller(student, teacher)
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


def test_padded_positions_do_not_count():
    x, labels, mask = batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    distiller = kd.Distiller(student, teacher)
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
    x, labels, mask = batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    distiller = kd.Distiller(student, teacher)
    distiller.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0)
    masked = distiller.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    full = dict(x, padding_mask=np.ones_like(mask))
    weighted = distiller.evaluate(full, labels, sample_weight=mask.astype("float32"), batch_size=8, verbose=0, return_dict=True)
    for key in masked:
        np.testing.assert_allclose(weighted[key], masked[key], rtol=1e-5, err_msg=key)


def test_training_on_tokens_leaves_the_teacher_alone():
    x, labels, _ = batch(32)
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distiller = kd.Distiller(student, teacher)
    distiller.compile(optimizer="adam", loss=CE, alpha=0.5, distillation_loss="reverse_kl")
    history = distiller.fit(x, labels, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(after, before)


RNG = np.random.default_rng(1)
TEACHER = (RNG.normal(size=(4, 3, 7)) * 3).astype("float32")
STUDENT = (RNG.normal(size=(4, 3, 7)) * 3).astype("float32")


def numpy_reverse_kl(teacher, student, temperature):
    return numpy_kl(student, teacher, temperature)


def numpy_jsd(teacher, student, beta, temperature):
    p = np.exp(log_softmax(np.float64(teacher) / temperature))
    q = np.exp(log_softmax(np.float64(student) / temperature))
    m = beta * p + (1 - beta) * q
    kl = lambda a, b: np.sum(a * np.log(a / b), axis=-1)  # noqa: E731
    return temperature**2 * (beta * kl(p, m) + (1 - beta) * kl(q, m))


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_divergences_against_numpy(temperature):
    reverse = kd.losses.soft_target_reverse_kl(TEACHER, STUDENT, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(reverse), numpy_reverse_kl(TEACHER, STUDENT, temperature), rtol=1e-4)
    for beta in (0.1, 0.5, 0.9):
        jsd = kd.losses.generalized_jsd(TEACHER, STUDENT, beta=beta, temperature=temperature)
        np.testing.assert_allclose(ops.convert_to_numpy(jsd), numpy_jsd(TEACHER, STUDENT, beta, temperature), rtol=1e-4)
    # Symmetric JSD is bounded by T^2 log 2; both are shift invariant.
    symmetric = ops.convert_to_numpy(kd.losses.generalized_jsd(TEACHER, STUDENT, temperature=temperature))
    assert np.all(symmetric <= temperature**2 * np.log(2) + 1e-6)
    shifted = kd.losses.generalized_jsd(TEACHER + 4.0, STUDENT - 2.0, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(shifted), symmetric, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        ops.convert_to_numpy(kd.losses.soft_target_reverse_kl(TEACHER - 9.0, STUDENT, temperature=temperature)),
        ops.convert_to_numpy(reverse), rtol=1e-4, atol=1e-6,
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_divergences_finite_in_low_precision(dtype):
    teacher = ops.cast(TEACHER * 10, dtype)
    student = ops.cast(-STUDENT * 10, dtype)
    for loss in (kd.losses.SoftTargetReverseKL(2.0), kd.losses.GeneralizedJSD(0.3, 2.0), kd.losses.SoftTargetKLDivergence(2.0)):
        value = ops.convert_to_numpy(loss(teacher, student))
        assert value.dtype == np.float32 and np.isfinite(value) and value >= 0


def test_divergence_names_and_round_trip():
    assert isinstance(kd.losses.get("reverse_kl"), kd.losses.SoftTargetReverseKL)
    assert isinstance(kd.losses.get("jsd"), kd.losses.GeneralizedJSD)
    loss = kd.losses.GeneralizedJSD(beta=0.8, temperature=3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.beta == 0.8 and restored.temperature == 3.0
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        kd.losses.GeneralizedJSD(beta=1.0)


def numpy_top_k_kl(teacher_logits, student_logits, k, temperature):
    log_p = log_softmax(teacher_logits)
    order = np.argsort(-log_p, axis=-1)[..., :k]
    top = np.take_along_axis(log_p, order, -1)
    rest = 1 - np.exp(top).sum(-1)
    p = np.exp(log_softmax(top / temperature)) * (1 - rest)[..., None]
    q_all = np.exp(log_softmax(np.float64(student_logits) / temperature))
    q = np.take_along_axis(q_all, order, -1)
    q_rest = 1 - q.sum(-1)
    return temperature**2 * (np.sum(p * np.log(p / q), -1) + rest * np.log(rest / q_rest))


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_top_k_loss(temperature):
    dense = ops.convert_to_numpy(kd.losses.soft_target_kl_divergence(TEACHER, STUDENT, temperature=temperature))
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 7)
    full = kd.losses.top_k_kl_divergence(indices, log_probs, STUDENT, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(full), dense, rtol=1e-4, atol=1e-5)
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 3)
    sparse = ops.convert_to_numpy(kd.losses.top_k_kl_divergence(indices, log_probs, STUDENT, temperature=temperature))
    np.testing.assert_allclose(sparse, numpy_top_k_kl(TEACHER, STUDENT, 3, temperature), rtol=1e-4, atol=1e-5)
    assert np.all(sparse >= -1e-6)


def test_top_k_in_the_distiller_live_and_cached():
    x, labels, mask = batch(32)
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    dense = kd.Distiller(student, teacher)
    dense.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0)
    full_k = kd.Distiller(student, teacher, teacher_top_k=VOCABULARY)
    full_k.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0)
    reference = dense.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    for key, value in full_k.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True).items():
        np.testing.assert_allclose(value, reference[key], rtol=1e-4, err_msg=key)

    initial = student.get_weights()
    live = kd.Distiller(student, teacher, teacher_top_k=4)
    live.compile(optimizer=keras.optimizers.SGD(0.5), loss=CE, alpha=0.3, temperature=2.0)
    expected = numpy_top_k_kl(predict(teacher, x), predict(student, x), 4, 2.0)
    logs = live.evaluate(x, labels, batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], masked_mean(expected, mask), rtol=1e-4)
    live_history = live.fit(x, labels, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    live_weights = student.get_weights()

    student.set_weights(initial)
    cache = kd.precompute_teacher_outputs(teacher, x, top_k=4)
    assert cache["top_k_indices"].shape == (32, LENGTH, 4) and cache["top_k_indices"].dtype == np.int32
    cached = kd.Distiller(student, teacher)
    cached.compile(optimizer=keras.optimizers.SGD(0.5), loss=CE, alpha=0.3, temperature=2.0)
    cached_history = cached.fit(
        x, kd.with_teacher_outputs(labels, cache), batch_size=8, epochs=2, shuffle=False, verbose=0
    ).history
    for key, values in live_history.items():
        np.testing.assert_allclose(cached_history[key], values, rtol=1e-4, err_msg=key)
    for a, b in zip(live_weights, student.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_top_k_errors():
    x, labels, _ = batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    with pytest.raises(ValueError, match="between 1 and the number of classes"):
        kd.Distiller(student, teacher, teacher_top_k=VOCABULARY + 1)
    with pytest.raises(ValueError, match="one teacher"):
        kd.Distiller(student, [teacher, token_model(8, "other")], teacher_top_k=3)
    distiller = kd.Distiller(student, teacher, teacher_top_k=3)
    with pytest.raises(ValueError, match="top-k KL divergence only"):
        distiller.compile(optimizer="sgd", loss=CE, distillation_loss="reverse_kl")
    cache = kd.precompute_teacher_outputs(teacher, x, top_k=3)
    plain = kd.Distiller(student, teacher)
    plain.compile(optimizer="sgd", loss=CE, distillation_loss="jsd")
    with pytest.raises(ValueError, match="top-k KL divergence only"):
        plain.fit(x, kd.with_teacher_outputs(labels, cache), verbose=0)
    with pytest.raises(ValueError, match="positive int"):
        kd.precompute_teacher_outputs(teacher, x, top_k=0)


def test_keras_hub_gpt2_teacher_and_student():
    teacher, student = causal_lm(2, 16, "teacher"), causal_lm(1, 8, "student")
    x, labels, mask = batch(16)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distiller = kd.Distiller(student, teacher)
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


def test_map_layers():
    teacher = [f"t{i}" for i in range(12)]
    pairs = kd.features.map_layers(teacher, [f"s{i}" for i in range(6)])
    assert pairs == [(f"t{2 * i + 1}", f"s{i}") for i in range(6)]
    assert kd.features.map_layers(["a", "b", "c"], ["x", "y"]) == [("a", "x"), ("c", "y")]
    with pytest.raises(ValueError, match="1 to len"):
        kd.features.map_layers(["a"], ["x", "y"])


def test_hidden_state_loss_is_the_mean_over_real_tokens():
    x, labels, mask = batch()
    student, teacher = token_model(4, "student"), token_model(8, "teacher")
    distiller = kd.FeatureDistiller(
        student, teacher, pairs=[("teacher_hidden", "student_hidden")], feature_loss="cosine", projections="auto"
    )
    distiller.compile(optimizer="sgd", loss=CE, alpha=0.3, temperature=2.0, feature_weight=1.0)
    logs = distiller.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    teacher_hidden = kd.features.build_feature_extractor(teacher, ["teacher_hidden"])(x)["teacher_hidden"]
    student_hidden = kd.features.build_feature_extractor(student, ["student_hidden"])(x)["student_hidden"]
    projected = ops.convert_to_numpy(distiller.projections[0](student_hidden))
    teacher_hidden = ops.convert_to_numpy(teacher_hidden)
    cosine = np.sum(teacher_hidden * projected, -1) / (
        np.linalg.norm(teacher_hidden, axis=-1) * np.linalg.norm(projected, axis=-1)
    )
    np.testing.assert_allclose(logs["feature_loss"], masked_mean(1 - cosine, mask), rtol=1e-4)
    changed = dict(x, token_ids=np.where(mask, x["token_ids"], (x["token_ids"] + 5) % VOCABULARY).astype("int32"))
    after = distiller.evaluate(changed, labels, batch_size=8, verbose=0, return_dict=True)
    for key in logs:
        np.testing.assert_allclose(after[key], logs[key], rtol=1e-5, err_msg=key)


def test_keras_hub_hidden_states_every_second_layer():
    teacher, student = causal_lm(4, 16, "teacher"), causal_lm(2, 8, "student")
    pairs = kd.features.map_layers(
        [f"teacher_backbone/transformer_layer_{i}" for i in range(4)],
        [f"student_backbone/transformer_layer_{i}" for i in range(2)],
    )
    assert [t for t, _ in pairs] == ["teacher_backbone/transformer_layer_1", "teacher_backbone/transformer_layer_3"]
    x, labels, _ = batch(16)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    for loss in ("mse", "cosine"):
        distiller = kd.FeatureDistiller(student, teacher, pairs=pairs, feature_loss=loss, projections="auto")
        assert all(isinstance(p, keras.layers.Dense) for p in distiller.projections)
        distiller.compile(optimizer="adam", loss=CE, alpha=0.5, feature_weight=1.0)
        history = distiller.fit(x, labels, batch_size=8, epochs=2, verbose=0).history
        assert np.all(np.isfinite(history["feature_loss"])) and history["feature_loss"][-1] > 0
    for old, new in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(new, old)


def test_keras_hub_vocabulary_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"teacher.*student|student.*teacher") as error:
        kd.Distiller(causal_lm(1, 8, "student", vocabulary=32), causal_lm(1, 8, "teacher", vocabulary=64))
    assert "64" in str(error.value) and "32" in str(error.value)


def test_keras_hub_student_with_a_preprocessor_on_raw_strings():
    keras_hub = pytest.importorskip("keras_hub")
    vocabulary = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "Ġ": 4, "Ġa": 5, "ab": 6}
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=["Ġ a", "a b"])
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=10)
    student = causal_lm(1, 8, "student", vocabulary=len(vocabulary))
    student.preprocessor = preprocessor
    teacher = causal_lm(2, 16, "teacher", vocabulary=len(vocabulary))
    rng = np.random.default_rng(0)
    texts = np.array(["".join(rng.choice(list("abc "), size=rng.integers(2, 9))) for _ in range(24)])
    distiller = kd.Distiller(student, teacher)
    distiller.compile(optimizer="adam", loss=CE, alpha=0.5, distillation_loss="reverse_kl")
    raw = distiller.evaluate(texts, batch_size=8, verbose=0, return_dict=True)
    x, labels, label_mask = keras.tree.map_structure(ops.convert_to_numpy, preprocessor(list(texts)))
    tokens = distiller.evaluate(x, labels, sample_weight=label_mask, batch_size=8, verbose=0, return_dict=True)
    for key in raw:
        np.testing.assert_allclose(raw[key], tokens[key], rtol=1e-5, err_msg=key)
    history = distiller.fit(texts, batch_size=8, epochs=2, validation_data=texts[:8], verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and "val_distillation_loss" in history
    assert distiller.predict(texts[:4], verbose=0).shape == (4, 10, len(vocabulary))
