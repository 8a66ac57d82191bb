import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import LENGTH
from tests.conftest import causal_lm


def greedy_reference(teacher, token_ids, mask):
    """Greedy decoding written out: at each position after the prompt, the
    teacher's most likely next token given everything before it."""
    token_ids = token_ids.copy()
    for position in range(1, LENGTH):
        logits = keras.ops.convert_to_numpy(
            teacher({"token_ids": token_ids, "padding_mask": np.ones_like(mask)}, training=False)
        )
        fill = ~mask[:, position]
        token_ids[fill, position] = np.argmax(logits[fill, position - 1], axis=-1)
    return token_ids


def test_tokenized_prompts_give_the_teachers_greedy_continuations_and_weights(tmp_path):
    keras.utils.set_random_seed(0)
    teacher = causal_lm(1, 16, "teacher")
    rng = np.random.default_rng(0)
    lengths = np.array([1, 2, 3, 2])
    mask = np.arange(LENGTH)[None, :] < lengths[:, None]
    token_ids = np.where(mask, rng.integers(1, 12, (4, LENGTH)), 0).astype("int32")
    teacher.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", sampler="top_k")
    optimizer, sampler = teacher.optimizer, teacher.sampler
    x, y, weights = kd.generate_distillation_data(
        teacher, {"token_ids": token_ids, "padding_mask": mask}, batch_size=3, path=str(tmp_path / "data.npz")
    )
    # The teacher's own compile (optimizer, sampler) is left as it was.
    assert teacher.optimizer is optimizer and teacher.sampler is sampler
    expected = greedy_reference(teacher, token_ids, mask)
    full = np.concatenate([x["token_ids"], y[:, -1:]], axis=1)
    np.testing.assert_array_equal(full, expected)
    np.testing.assert_array_equal(y, expected[:, 1:])
    # Weight 1 exactly where the next token was generated.
    np.testing.assert_array_equal(weights, (~mask[:, 1:]).astype("float32"))
    stored = np.load(tmp_path / "data.npz")
    np.testing.assert_array_equal(stored["labels"], y)
    # Ready for fit: the student learns the teacher's outputs.
    student = causal_lm(1, 8, "student")
    student.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = student.fit(x, y, sample_weight=weights, epochs=20, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_text_prompts_need_a_preprocessor():
    teacher = causal_lm(1, 8, "teacher")
    with pytest.raises(ValueError, match="has no preprocessor.*tokenized"):
        kd.generate_distillation_data(teacher, ["a prompt"])
    with pytest.raises(ValueError, match="needs a keras-hub CausalLM teacher"):
        kd.generate_distillation_data(keras.Sequential([keras.layers.Dense(2)]), ["a prompt"])


def test_text_prompts_stop_at_the_stop_tokens():
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    # A byte-level BPE of 8 tokens: enough for a teacher with a preprocessor.
    vocabulary = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "Ġ": 4, "Ġa": 5, "Ġb": 6, "Ġc": 7}
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=["Ġ a", "Ġ b", "Ġ c"])
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=8, num_layers=1, num_heads=1, hidden_dim=8, intermediate_dim=16, max_sequence_length=10
    )
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=10)
    teacher = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)

    def ids(text):
        return [int(i) for i in keras.ops.convert_to_numpy(tokenizer(text))]

    prompt = "a b"
    full = ids(kd.generate_distillation_data(teacher, [prompt], stop_token_ids=None)[0])
    generated = full[len(ids(prompt)) :]
    assert len(generated) >= 3  # greedy, no stop: the whole length
    # Stop at the second generated token: the same greedy text, cut there.
    stop = generated[1]
    cut = generated.index(stop) + 1
    stopped = ids(kd.generate_distillation_data(teacher, [prompt], stop_token_ids=[stop])[0])
    assert stopped in (full[: len(ids(prompt)) + cut], full[: len(ids(prompt)) + cut - 1])
    assert len(stopped) < len(full)
