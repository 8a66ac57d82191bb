"""A byte-level teacher distilled into a student with its own BPE tokenizer,
trained offline on the fortunes text (Debian's `fortunes` package)."""

import glob
import os

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import causal_lm
from tests.losses.test_universal_logit import numpy_uld

FORTUNES = "/usr/share/games/fortunes"
BYTES, TOKENS = 48, 24


def fortunes(count):
    texts = []
    for path in sorted(glob.glob(os.path.join(FORTUNES, "*"))):
        if path.endswith((".dat", ".u8")) or os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as handle:
            parts = handle.read().decode("utf-8", "replace").split("\n%\n")
        texts += [part.strip() for part in parts if len(part.strip()) > 20]
    if not texts:
        pytest.skip(f"No fortunes under {FORTUNES}: `make data` installs Debian's fortunes package.")
    return texts[:count]


def train_bpe(texts, vocabulary_size):
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocabulary_size, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def padded(sequences, length):
    """`{"token_ids", "padding_mask"}` of the first `length` tokens, the
    next tokens as labels, and weights 1 where the next token is real."""
    tokens = np.zeros((len(sequences), length + 1), "int32")
    for row, sequence in enumerate(sequences):
        sequence = sequence[: length + 1]
        tokens[row, : len(sequence)] = sequence
    lengths = np.array([min(len(s), length + 1) for s in sequences])
    mask = np.arange(length)[None, :] < lengths[:, None] - 1
    return {"token_ids": tokens[:, :-1], "padding_mask": mask}, tokens[:, 1:], mask.astype("float32")


def test_a_byte_level_teacher_distills_into_a_bpe_student():
    texts = fortunes(64)
    tokenizer = train_bpe(fortunes(2000), vocabulary_size=384)
    vocabulary = tokenizer.get_vocab_size()
    assert 256 < vocabulary <= 384
    student_x, labels, weights = padded([tokenizer.encode(text).ids for text in texts], TOKENS)
    teacher_x, _, _ = padded([list(text.encode("utf-8")) for text in texts], BYTES)
    # BPE packs several bytes per token: the two sequences really differ.
    assert student_x["padding_mask"].sum() < teacher_x["padding_mask"].sum()

    keras.utils.set_random_seed(0)
    teacher = causal_lm(1, 16, "byte_teacher", vocabulary=256, dropout=0.0, max_length=BYTES)
    embedding = teacher.backbone.token_embedding.embeddings
    embedding.assign(embedding * 20.0)  # a peaked teacher, far from the uniform student
    student = causal_lm(1, 16, "bpe_student", vocabulary=vocabulary, dropout=0.0, max_length=BYTES)

    with pytest.raises(ValueError, match="separate_teacher_inputs=True.*'uld'"):
        kd.Distiller(student=student, teacher=teacher)
    distiller = kd.Distiller(student=student, teacher=teacher, separate_teacher_inputs=True)
    with pytest.raises(ValueError, match="token by token.*distillation_loss='uld'"):
        distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy", distillation_loss="kl")
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        alpha=0.5,
        temperature=1.0,
        distillation_loss="uld",
    )
    with pytest.raises(ValueError, match="must be a dict \\{'student'.*Received \\['padding_mask', 'token_ids'\\]"):
        distiller.fit(student_x, labels, sample_weight=weights, verbose=0)

    x = {"student": student_x, "teacher": teacher_x}
    # The distillation loss is ULD between each student token and the
    # teacher's byte at the same position, over the student's real tokens.
    teacher_logits = keras.ops.convert_to_numpy(teacher(teacher_x, training=False))
    student_logits = keras.ops.convert_to_numpy(student(student_x, training=False))
    assert teacher_logits.shape[-1] == 256 and student_logits.shape[-1] == vocabulary
    expected = (numpy_uld(teacher_logits, student_logits, temperature=1.0) * weights).sum() / weights.sum()
    result = distiller.evaluate(x, labels, sample_weight=weights, batch_size=len(texts), return_dict=True)
    np.testing.assert_allclose(result["distillation_loss"], expected, rtol=1e-5)

    teacher_before = [w.copy() for w in teacher.get_weights()]
    history = distiller.fit(x, labels, sample_weight=weights, batch_size=16, epochs=6, verbose=0)
    distilled = history.history["distillation_loss"]
    assert distilled[-1] < 0.7 * distilled[0]
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    # The student predicts from its own tokens alone.
    assert distiller.predict(student_x, verbose=0).shape == (len(texts), TOKENS, vocabulary)
    restored = kd.Distiller.from_config(distiller.get_config())
    assert restored.separate_teacher_inputs


def test_distillers_that_share_inputs_refuse_separate_teacher_inputs():
    keras.utils.set_random_seed(0)
    teacher, student = causal_lm(1, 8, "teacher"), causal_lm(1, 8, "student")
    for distiller in (kd.CausalLMDistiller, kd.OnPolicyDistiller):
        with pytest.raises(ValueError, match="same inputs.*keras_distill.Distiller"):
            distiller(student=student, teacher=teacher, separate_teacher_inputs=True)
    with pytest.raises(ValueError, match="one teacher"):
        kd.Distiller(student=student, teacher=[teacher, causal_lm(1, 8, "teacher_b")], separate_teacher_inputs=True)
    with pytest.raises(TypeError, match="True or False"):
        kd.Distiller(student=student, teacher=teacher, separate_teacher_inputs="yes")
