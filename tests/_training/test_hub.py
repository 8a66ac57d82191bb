import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import causal_lm

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def predict(model, x):
    return ops.convert_to_numpy(model(x))


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
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=CE, alpha=0.5, distillation_loss="reverse_kl")
    raw = distiller.evaluate(texts, batch_size=8, verbose=0, return_dict=True)
    x, labels, label_mask = keras.tree.map_structure(ops.convert_to_numpy, preprocessor(list(texts)))
    tokens = distiller.evaluate(x, labels, sample_weight=label_mask, batch_size=8, verbose=0, return_dict=True)
    for key in raw:
        np.testing.assert_allclose(raw[key], tokens[key], rtol=1e-5, err_msg=key)
    history = distiller.fit(texts, batch_size=8, epochs=2, validation_data=texts[:8], verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and "val_distillation_loss" in history
    assert distiller.predict(texts[:4], verbose=0).shape == (4, 10, len(vocabulary))
