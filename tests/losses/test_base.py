"""What every feature loss guarantees: float32 results and a config round trip."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from keras_distill.losses.base import check_logit_shapes

RNG = np.random.default_rng(0)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize(
    "loss",
    [
        kd.losses.HintLoss(),
        kd.losses.FSPLoss(data_format="channels_first"),
        kd.losses.AttentionTransfer(p=4, data_format="channels_last"),
        kd.losses.RKDDistance(delta=2.0),
        kd.losses.RKDAngle(),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_feature_losses_serialize(loss):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()


def test_low_precision_inputs_give_float32_losses():
    t = RNG.normal(size=(4, 4, 4, 3)).astype("float16")
    s = RNG.normal(size=(4, 4, 4, 3)).astype("float16")
    for value in (
        kd.losses.hint_loss(t, s),
        kd.losses.attention_transfer(t, s, data_format="channels_last"),
        kd.losses.rkd_angle(t, s),
        kd.losses.fsp_loss((t, s), (s, t), data_format="channels_last"),
    ):
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        assert np.all(np.isfinite(_numpy(value)))


LOGITS = (RNG.normal(size=(4, 3, 10)) * 30).astype("float32"), (RNG.normal(size=(4, 3, 10)) * 30).astype("float32")
MAPS = (RNG.normal(size=(2, 4, 4, 3)) * 300).astype("float32"), (RNG.normal(size=(2, 4, 4, 3)) * 300).astype("float32")
FUNCTIONS = {
    "soft_target_kl_divergence": lambda t, s: kd.losses.soft_target_kl_divergence(t, s, temperature=3.3),
    "soft_target_cross_entropy": lambda t, s: kd.losses.soft_target_cross_entropy(t, s, temperature=3.3),
    "soft_target_reverse_kl": lambda t, s: kd.losses.soft_target_reverse_kl(t, s, temperature=3.3),
    "generalized_jsd": lambda t, s: kd.losses.generalized_jsd(t, s, temperature=3.3),
    "decoupled_kd": lambda t, s: kd.losses.decoupled_kd(t, s, np.arange(12).reshape(4, 3) % 10),
    "dist": lambda t, s: kd.losses.dist(t, s, temperature=3.3),
    "logit_matching": kd.losses.logit_matching,
    "standardize_logits": lambda t, s: kd.losses.standardize_logits(t),
    "universal_logit_distillation": lambda t, s: kd.losses.universal_logit_distillation(t, s[..., :7]),
    "top_k_divergence": lambda t, s: kd.losses.top_k_divergence(
        *kd.losses.top_k_teacher(t, 3), s, divergence="jsd", temperature=3.3
    ),
    "hint_loss": lambda t, s: kd.losses.hint_loss(t, s),
    "cosine_distance": lambda t, s: kd.losses.cosine_distance(t, s),
    "rkd_distance": lambda t, s: kd.losses.rkd_distance(t, s),
    "rkd_angle": lambda t, s: kd.losses.rkd_angle(t, s),
}
MAP_FUNCTIONS = {
    "attention_map": lambda t, s: kd.losses.attention_map(t, data_format="channels_last"),
    "attention_transfer": lambda t, s: kd.losses.attention_transfer(t, s, data_format="channels_last"),
    "fsp_loss": lambda t, s: kd.losses.fsp_loss((t, s), (s, t * 0.5), data_format="channels_last"),
}


@pytest.mark.parametrize("name", [*FUNCTIONS, *MAP_FUNCTIONS])
def test_float32_whatever_floatx(name):
    """With `keras.config.set_floatx("float16")`, where a dtype left out
    means float16, every loss still computes in float32: the same finite
    value as under float32 (in float16, 30-sized logits and 300-sized
    features overflow a square or a softmax, and a temperature of 3.3 is
    3.3008)."""
    function, inputs = (FUNCTIONS[name], LOGITS) if name in FUNCTIONS else (MAP_FUNCTIONS[name], MAPS)
    teacher, student = (x.astype("float16") for x in inputs)
    expected = _numpy(function(teacher, student))
    floatx = keras.config.floatx()
    keras.config.set_floatx("float16")
    try:
        value = function(teacher, student)
    finally:
        keras.config.set_floatx(floatx)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    np.testing.assert_allclose(_numpy(value), expected, rtol=1e-5, atol=1e-6)


def test_logit_shapes_unknown_until_the_step_match_any_size():
    check_logit_shapes(keras.KerasTensor((None, 10)), np.zeros((4, 10)), "kd")
    check_logit_shapes(np.zeros((4, 10)), keras.KerasTensor((None, 10)), "kd")
    check_logit_shapes(keras.KerasTensor((None, None, 10)), keras.KerasTensor((2, None, 10)), "kd")
    for teacher, student in (((4, 10), (4, 10, 1)), ((4, 10), (4, 9)), ((None, 10), (4, 9))):
        with pytest.raises(ValueError) as error:
            check_logit_shapes(keras.KerasTensor(teacher), keras.KerasTensor(student), "my_loss")
        assert str(error.value).startswith(
            f"my_loss compares the teacher's and the student's logits class by class, so they need one shape. "
            f"Received: teacher_logits of shape {teacher} and student_logits of shape {student}."
        )
    with pytest.raises(ValueError, match=r"^soft_target_kl_divergence compares .* of shape \(4, 10\) and .* \(4, 9\)"):
        kd.losses.soft_target_kl_divergence(np.zeros((4, 10)), np.zeros((4, 9)).tolist())
    with pytest.raises(ValueError, match=r"^SoftenedLoss compares"):
        kd.losses.SoftenedLoss(keras.losses.KLDivergence())(np.zeros((4, 10)), np.zeros((4, 9)))


def test_features_of_other_shapes_are_refused_when_called_directly():
    """Called directly, (6, 8) against (6, 1) would broadcast without a word;
    the loss names both shapes and the fix. Lists have no shape to check
    and are taken as Keras takes them."""
    a = RNG.normal(size=(6, 8)).astype("float32")
    with pytest.raises(ValueError) as error:
        kd.losses.HintLoss()(a, a[:, :1])
    assert str(error.value).startswith(
        "HintLoss compares features of equal shape. Received: teacher feature (batch, 8) and student feature "
        "(batch, 1). Tap layers"
    )
    with pytest.raises(ValueError, match=r"teacher feature \(batch, 1\) and student feature \(batch, 8\)"):
        kd.losses.HintLoss()(a[:, :1], a)
    with pytest.raises(ValueError, match=r"teacher feature \(batch, 2, 4\) and student feature \(batch, 8\)"):
        kd.losses.CosineDistance()(a.reshape(6, 2, 4), a)
    expected = _numpy(kd.losses.HintLoss()(a, a * 0.5))
    np.testing.assert_allclose(_numpy(kd.losses.HintLoss()(a, (a * 0.5).tolist())), expected, rtol=1e-6)
    np.testing.assert_allclose(_numpy(kd.losses.HintLoss()(a.tolist(), a * 0.5)), expected, rtol=1e-6)


def test_subclasses_of_the_bases_reduce_as_keras_losses_do():
    """A user's own loss on either base gets Keras' default reduction."""

    class Gap(kd.losses.LogitLoss):
        def call(self, y_true, y_pred):
            return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)

    class FeatureGap(kd.losses.FeatureLoss):
        def call(self, y_true, y_pred):
            return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)

    teacher, student = LOGITS[0][:, 0], LOGITS[1][:, 0]
    expected = np.abs(teacher - student).mean(-1)
    for loss in (Gap(), FeatureGap()):
        assert loss.reduction == "sum_over_batch_size"
        np.testing.assert_allclose(_numpy(loss(teacher, student)), expected.mean(), rtol=1e-5)
    with pytest.raises(ValueError, match=r"`Gap` takes no temperature\. Received: temperature=2\.0\. Remove"):
        Gap(temperature=2.0)


def test_feature_sizes_unknown_until_the_step_match_any_size():
    """Token lengths are often None in a model's shape: (None, None, 8)
    compares with (None, 6, 8) either way round."""
    loss = kd.losses.HintLoss()
    loss.check_shapes((None, None, 8), (None, 6, 8))
    loss.check_shapes((None, 6, 8), (None, None, 8))
    with pytest.raises(ValueError, match=r"teacher feature \(batch, None, 8\) and student feature \(batch, 6, 4\)"):
        loss.check_shapes((None, None, 8), (None, 6, 4))
