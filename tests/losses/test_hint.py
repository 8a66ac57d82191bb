import keras
import numpy as np

import keras_distill as kd

RNG = np.random.default_rng(0)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_hint_loss_is_half_squared_distance():
    t, s = RNG.normal(size=(4, 3, 3, 5)), RNG.normal(size=(4, 3, 3, 5))
    expected = 0.5 * ((t - s) ** 2).reshape(4, -1).sum(-1)
    np.testing.assert_allclose(_numpy(kd.losses.hint_loss(t, s)), expected, rtol=1e-5)
    weights = np.array([1.0, 0.0, 2.0, 0.5])
    np.testing.assert_allclose(
        _numpy(kd.losses.HintLoss()(t, s, sample_weight=weights)), (expected * weights).mean(), rtol=1e-5
    )
