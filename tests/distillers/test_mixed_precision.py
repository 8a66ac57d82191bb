"""Mixed precision: float16 / bfloat16 compute, float32 losses.

Stated tolerance: under `mixed_float16` and `mixed_bfloat16` the losses of
an evaluation, and every loss of the last of four training epochs, are
within 3% (float16) and 6% (bfloat16), or 0.01 absolute, of float32
training from the same initial weights; bfloat16 keeps 8 significant bits
(0.4% per rounding), float16 11 bits.
"""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_cnn

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
TOLERANCE = {"mixed_float16": 0.03, "mixed_bfloat16": 0.06}


def _optimizer():
    optimizer = keras.optimizers.Adam(3e-3)
    if keras.config.dtype_policy().name == "mixed_float16":
        # Keras' default dynamic loss scale starts at 2**15 and skips the
        # steps whose scaled gradients overflow until it has halved enough
        # (the first epoch's hint loss then lags float32's by 20-50%); start
        # where it would settle, so the comparison is of precision alone.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0**8)
    return optimizer


def _build(kind):
    teacher = make_cnn("teacher", (8, 16))
    student = make_cnn("student", (4, 8))
    if kind == "distiller":
        model = kd.Distiller(student, teacher)
        model.compile(optimizer=_optimizer(), loss=CE, alpha=0.5, temperature=4.0)
    elif kind == "hint":
        model = kd.HintDistiller(student, teacher, hint_layer="teacher_conv2", guided_layer="student_conv2")
        model.compile(optimizer=_optimizer(), loss=CE, alpha=0.5, temperature=4.0, hint_weight=0.5)
    else:
        model = kd.MutualLearner([student, make_cnn("peer", (8, 8))], temperature=2.0)
        model.compile(optimizer=_optimizer(), loss=CE)
    return model


def _models(model):
    if isinstance(model, kd.MutualLearner):
        return model.peers
    extra = [model.regressors[0]] if isinstance(model, kd.HintDistiller) else []
    return [model.student, *model.teachers, *extra]


def _run(kind, policy, images, labels, weights=None):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = _build(kind)
    model.evaluate(images[:8], labels[:8], verbose=0)  # builds regressors and slots
    if weights is not None:
        for target, values in zip(_models(model), weights):
            target.set_weights(values)
    keras.config.set_dtype_policy("float32")
    evaluation = model.evaluate(images, labels, batch_size=64, verbose=0, return_dict=True)
    history = model.fit(images, labels, batch_size=32, epochs=4, shuffle=False, verbose=0).history
    return model, evaluation, history


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("kind", ["distiller", "hint", "mutual"])
def test_mixed_precision_matches_float32(kind, policy, digit_images):
    (images, labels), _ = digit_images
    images, labels = images[:256], labels[:256]
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    initial = _build(kind)
    initial.evaluate(images[:8], labels[:8], verbose=0)
    weights = [model.get_weights() for model in _models(initial)]
    _, reference_eval, reference_history = _run(kind, "float32", images, labels, weights)
    model, evaluation, history = _run(kind, policy, images, labels, weights)

    compute = "float16" if policy == "mixed_float16" else "bfloat16"
    first = _models(model)[0]
    assert first.compute_dtype == compute and first.variable_dtype == "float32"
    assert keras.backend.standardize_dtype(first(images[:4]).dtype) == compute
    tolerance = TOLERANCE[policy]
    for key, value in reference_eval.items():
        np.testing.assert_allclose(evaluation[key], value, rtol=tolerance, atol=1e-3, err_msg=key)
    for key, values in reference_history.items():
        assert np.all(np.isfinite(history[key])), key
        np.testing.assert_allclose(history[key][-1], values[-1], rtol=tolerance, atol=1e-2, err_msg=key)
