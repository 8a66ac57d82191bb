import keras
import numpy as np
import pytest

import keras_distill as kd

RNG = np.random.default_rng(0)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def numpy_attention(f, p=2):
    q = (np.abs(f) ** p).mean(axis=-1).reshape(len(f), -1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_attention_transfer():
    t, s = RNG.normal(size=(3, 4, 4, 8)), RNG.normal(size=(3, 4, 4, 2))
    np.testing.assert_allclose(
        _numpy(kd.losses.attention_map(t, data_format="channels_last")), numpy_attention(t), rtol=1e-5
    )
    expected = ((numpy_attention(t) - numpy_attention(s)) ** 2).mean(axis=-1)
    np.testing.assert_allclose(
        _numpy(kd.losses.attention_transfer(t, s, data_format="channels_last")), expected, rtol=1e-5
    )
    first = kd.losses.attention_transfer(t.transpose(0, 3, 1, 2), s.transpose(0, 3, 1, 2), data_format="channels_first")
    np.testing.assert_allclose(_numpy(first), expected, rtol=1e-5)
    loss = kd.losses.AttentionTransfer(data_format="channels_last")
    loss.check_shapes(t.shape, s.shape)
    with pytest.raises(ValueError, match="same spatial size"):
        loss.check_shapes(t.shape, (3, 2, 2, 8))


@pytest.mark.parametrize("p", [1, 4])
def test_attention_transfer_at_another_exponent(p):
    t, s = RNG.normal(size=(3, 4, 4, 8)), RNG.normal(size=(3, 4, 4, 2))
    expected = ((numpy_attention(t, p) - numpy_attention(s, p)) ** 2).mean(axis=-1)
    np.testing.assert_allclose(
        _numpy(kd.losses.attention_transfer(t, s, p=p, data_format="channels_last")), expected, rtol=1e-5
    )
    loss = kd.losses.AttentionTransfer.from_config(
        kd.losses.AttentionTransfer(p=p, data_format="channels_last").get_config()
    )
    np.testing.assert_allclose(_numpy(loss(t, s)), expected.mean(), rtol=1e-5)
    assert not np.allclose(expected, ((numpy_attention(t) - numpy_attention(s)) ** 2).mean(axis=-1))


def test_shape_check_compares_the_spatial_axes_of_either_data_format():
    last = kd.losses.AttentionTransfer(data_format="channels_last")
    last.check_shapes((None, 8, 6, 3), (4, 8, 6, 5))
    for student in ((4, 4, 6, 5), (4, 8, 4, 5)):
        with pytest.raises(ValueError, match=r"same spatial size\. Received: teacher \(batch, 8, 6, 3\) and student"):
            last.check_shapes((None, 8, 6, 3), student)
    first = kd.losses.AttentionTransfer(data_format="channels_first")
    first.check_shapes((None, 3, 8, 6), (4, 5, 8, 6))
    for student in ((4, 5, 4, 6), (4, 5, 8, 4)):
        with pytest.raises(ValueError, match=r"\(channels_first\)\. Tap layers with equal spatial sizes"):
            first.check_shapes((None, 3, 8, 6), student)
