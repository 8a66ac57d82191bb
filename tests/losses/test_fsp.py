import keras
import numpy as np
import pytest

import keras_distill as kd

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


def test_fsp_matrix_channels_last_and_first():
    a, b = RNG.normal(size=(2, 4, 5, 3)), RNG.normal(size=(2, 4, 5, 6))
    expected = numpy_fsp(a, b)
    got = kd.losses.fsp_matrix(a, b, data_format="channels_last")
    assert tuple(got.shape) == (2, 3, 6)
    np.testing.assert_allclose(_numpy(got), expected, rtol=1e-5, atol=1e-6)
    first = kd.losses.fsp_matrix(a.transpose(0, 3, 1, 2), b.transpose(0, 3, 1, 2), data_format="channels_first")
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
