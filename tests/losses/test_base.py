"""What every feature loss guarantees: float32 results and a config round trip."""

import keras
import numpy as np
import pytest

import keras_distill as kd

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
