import keras
import numpy as np
import pytest

import keras_distill as kd
from keras_distill.losses import feature_lookup

RNG = np.random.default_rng(0)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def numpy_fsp(a, b):
    """Channels-last FSP matrix, written out with loops over positions."""
    batch, height, width, m = a.shape
    n = b.shape[-1]
    g = np.zeros((batch, m, n))
    for s in range(height):
        for t in range(width):
            g += a[:, s, t, :, None] * b[:, s, t, None, :]
    return g / (height * width)


def numpy_attention(f):
    q = (np.abs(f) ** 2).mean(axis=-1).reshape(len(f), -1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def numpy_huber(d):
    return np.where(np.abs(d) < 1, 0.5 * d**2, np.abs(d) - 0.5)


def numpy_rkd_distance(t, s):
    def normalized(f):
        d = np.linalg.norm(f[:, None] - f[None], axis=-1)
        return d / d[d > 0].mean()

    return numpy_huber(normalized(s) - normalized(t)).mean(axis=1)


def numpy_rkd_angle(t, s):
    def angles(f):
        n = len(f)
        out = np.zeros((n, n, n))
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    u, v = f[j] - f[i], f[k] - f[i]
                    if j != i and k != i:
                        out[i, j, k] = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
        return out

    return numpy_huber(angles(s) - angles(t)).mean(axis=(1, 2))


def test_hint_loss_is_half_squared_distance():
    t, s = RNG.normal(size=(4, 3, 3, 5)), RNG.normal(size=(4, 3, 3, 5))
    expected = 0.5 * ((t - s) ** 2).reshape(4, -1).sum(-1)
    np.testing.assert_allclose(_numpy(kd.losses.hint_loss(t, s)), expected, rtol=1e-5)
    weights = np.array([1.0, 0.0, 2.0, 0.5])
    np.testing.assert_allclose(
        _numpy(kd.losses.HintLoss()(t, s, sample_weight=weights)), (expected * weights).mean(), rtol=1e-5
    )


def test_fsp_matrix_channels_last_and_first():
    a, b = RNG.normal(size=(2, 4, 5, 3)), RNG.normal(size=(2, 4, 5, 6))
    expected = numpy_fsp(a, b)
    got = kd.losses.fsp_matrix(a, b, data_format="channels_last")
    assert tuple(got.shape) == (2, 3, 6)
    np.testing.assert_allclose(_numpy(got), expected, rtol=1e-5, atol=1e-6)
    first = kd.losses.fsp_matrix(
        a.transpose(0, 3, 1, 2), b.transpose(0, 3, 1, 2), data_format="channels_first"
    )
    np.testing.assert_allclose(_numpy(first), expected, rtol=1e-5, atol=1e-6)


def test_fsp_matrix_pools_the_larger_map():
    a, b = RNG.normal(size=(2, 8, 8, 3)), RNG.normal(size=(2, 4, 4, 2))
    pooled = a.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(
        _numpy(kd.losses.fsp_matrix(a, b, data_format="channels_last")),
        numpy_fsp(pooled, b),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="whole multiple"):
        kd.losses.fsp_matrix(a, RNG.normal(size=(2, 3, 3, 2)), data_format="channels_last")


def test_fsp_loss_and_its_shape_check():
    ta, tb, sa, sb = (RNG.normal(size=(3, 4, 4, c)) for c in (2, 3, 2, 3))
    expected = ((numpy_fsp(ta, tb) - numpy_fsp(sa, sb)) ** 2).sum(axis=(1, 2))
    loss = kd.losses.FSPLoss(data_format="channels_last")
    np.testing.assert_allclose(_numpy(loss((ta, tb), (sa, sb))), expected.mean(), rtol=1e-5)
    loss.check_shapes([ta.shape, tb.shape], [sa.shape, sb.shape])
    with pytest.raises(ValueError, match="same shape"):
        loss.check_shapes([ta.shape, tb.shape], [sa.shape, (3, 4, 4, 5)])
    with pytest.raises(ValueError, match="pairs of feature maps"):
        loss.check_shapes(ta.shape, sa.shape)


def test_attention_transfer():
    t, s = RNG.normal(size=(3, 4, 4, 8)), RNG.normal(size=(3, 4, 4, 2))
    np.testing.assert_allclose(
        _numpy(kd.losses.attention_map(t, data_format="channels_last")), numpy_attention(t), rtol=1e-5
    )
    expected = ((numpy_attention(t) - numpy_attention(s)) ** 2).mean(axis=-1)
    np.testing.assert_allclose(
        _numpy(kd.losses.attention_transfer(t, s, data_format="channels_last")), expected, rtol=1e-5
    )
    first = kd.losses.attention_transfer(
        t.transpose(0, 3, 1, 2), s.transpose(0, 3, 1, 2), data_format="channels_first"
    )
    np.testing.assert_allclose(_numpy(first), expected, rtol=1e-5)
    loss = kd.losses.AttentionTransfer(data_format="channels_last")
    loss.check_shapes(t.shape, s.shape)
    with pytest.raises(ValueError, match="same spatial size"):
        loss.check_shapes(t.shape, (3, 2, 2, 8))


def test_rkd_distance_and_angle():
    t, s = RNG.normal(size=(5, 6)), RNG.normal(size=(5, 3))
    np.testing.assert_allclose(_numpy(kd.losses.rkd_distance(t, s)), numpy_rkd_distance(t, s), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_numpy(kd.losses.rkd_angle(t, s)), numpy_rkd_angle(t, s), rtol=1e-4, atol=1e-6)
    # Relations ignore the features' scale: a scaled student has the same loss.
    np.testing.assert_allclose(
        _numpy(kd.losses.RKDDistance()(t, 3.0 * s)), numpy_rkd_distance(t, s).mean(), rtol=1e-4
    )
    np.testing.assert_allclose(_numpy(kd.losses.RKDAngle()(t, 3.0 * s)), numpy_rkd_angle(t, s).mean(), rtol=1e-4)


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


def test_feature_loss_names_and_errors():
    assert isinstance(kd.losses.get_feature_loss("at"), kd.losses.AttentionTransfer)
    assert isinstance(kd.losses.get_feature_loss("hint"), kd.losses.HintLoss)
    assert set(feature_lookup.FEATURE_ALIASES) >= {"fsp", "rkd_distance", "rkd_angle", "mse"}
    with pytest.raises(ValueError, match="Unknown `feature_loss`.*'nope'"):
        kd.losses.get_feature_loss("nope")
    with pytest.raises(ValueError, match="p=0"):
        kd.losses.AttentionTransfer(p=0)
    with pytest.raises(ValueError, match="delta=-1"):
        kd.losses.RKDAngle(delta=-1)


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
