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


def test_shape_check_names_the_side_and_reads_channels_first():
    loss = kd.losses.FSPLoss(data_format="channels_last")
    for bad in ((3, 8), [(3, 4, 4, 2), (3, 4, 4, 3), (3, 4, 4, 3)]):
        with pytest.raises(ValueError, match=r"^FSPLoss compares pairs of feature maps\. Received for the student: "):
            loss.check_shapes([(3, 4, 4, 2), (3, 4, 4, 3)], bad)
        with pytest.raises(ValueError, match=r"^FSPLoss compares pairs of feature maps\. Received for the teacher: "):
            loss.check_shapes(bad, [(3, 4, 4, 2), (3, 4, 4, 3)])
    with pytest.raises(ValueError, match=r"Received a student feature of shape \(batch, 4\)"):
        loss.check_shapes([(3, 4, 4, 2), (3, 4, 4, 3)], [(3, 4), (3, 4, 4, 3)])
    first = kd.losses.FSPLoss(data_format="channels_first")
    first.check_shapes([(3, 2, 4, 4), (3, 3, 8, 8)], [(3, 2, 4, 4), (3, 3, 4, 4)])
    with pytest.raises(ValueError, match=r"teacher maps with \(2, 3\) channels and student maps with \(2, 5\)"):
        first.check_shapes([(3, 2, 4, 4), (3, 3, 4, 4)], [(3, 2, 4, 4), (3, 5, 4, 4)])


@pytest.mark.parametrize("swap", [False, True])
def test_pools_a_map_larger_along_one_axis_only(swap):
    a, b = RNG.normal(size=(2, 8, 4, 3)), RNG.normal(size=(2, 4, 4, 5))
    pooled = a.reshape(2, 4, 2, 4, 3).mean(axis=2)
    expected = numpy_fsp(pooled, b)
    if swap:
        value = kd.losses.fsp_matrix(b, a, data_format="channels_last")
        expected = np.swapaxes(expected, 1, 2)
    else:
        value = kd.losses.fsp_matrix(a, b, data_format="channels_last")
    np.testing.assert_allclose(_numpy(value), expected, rtol=1e-5, atol=1e-6)


def test_sizes_unknown_until_the_step_are_refused_with_the_fix():
    with pytest.raises(
        ValueError, match=r"both sizes must be known\. Received spatial sizes \(None, None\) and \(4, 4\)"
    ):
        kd.losses.fsp_matrix(
            keras.KerasTensor((None, None, None, 3)), keras.KerasTensor((None, 4, 4, 5)), "channels_last"
        )
