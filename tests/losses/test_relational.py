import keras
import numpy as np

import keras_distill as kd

RNG = np.random.default_rng(0)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def numpy_huber(d, delta=1.0):
    """PyTorch's smooth L1 with `beta=delta`, as the authors' code uses it."""
    return np.where(np.abs(d) < delta, 0.5 * d**2 / delta, np.abs(d) - 0.5 * delta)


def numpy_rkd_distance(t, s, delta=1.0):
    def normalized(f):
        d = np.linalg.norm(f[:, None] - f[None], axis=-1)
        return d / d[d > 0].mean()

    return numpy_huber(normalized(s) - normalized(t), delta).mean(axis=1)


def numpy_rkd_angle(t, s, delta=1.0):
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

    return numpy_huber(angles(s) - angles(t), delta).mean(axis=(1, 2))


def test_rkd_distance_and_angle():
    t, s = RNG.normal(size=(5, 6)), RNG.normal(size=(5, 3))
    np.testing.assert_allclose(_numpy(kd.losses.rkd_distance(t, s)), numpy_rkd_distance(t, s), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_numpy(kd.losses.rkd_angle(t, s)), numpy_rkd_angle(t, s), rtol=1e-4, atol=1e-6)
    # Relations ignore the features' scale: a scaled student has the same loss.
    np.testing.assert_allclose(_numpy(kd.losses.RKDDistance()(t, 3.0 * s)), numpy_rkd_distance(t, s).mean(), rtol=1e-4)
    np.testing.assert_allclose(_numpy(kd.losses.RKDAngle()(t, 3.0 * s)), numpy_rkd_angle(t, s).mean(), rtol=1e-4)


def test_rkd_at_another_delta():
    t, s = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 5))
    for delta in (0.05, 0.3):
        np.testing.assert_allclose(
            _numpy(kd.losses.rkd_distance(t, s, delta=delta)), numpy_rkd_distance(t, s, delta), rtol=1e-4, atol=1e-6
        )
        np.testing.assert_allclose(
            _numpy(kd.losses.rkd_angle(t, s, delta=delta)), numpy_rkd_angle(t, s, delta), rtol=1e-4, atol=1e-6
        )
        restored = kd.losses.RKDDistance.from_config(kd.losses.RKDDistance(delta=delta).get_config())
        np.testing.assert_allclose(_numpy(restored(t, s)), numpy_rkd_distance(t, s, delta).mean(), rtol=1e-4)
    assert not np.allclose(numpy_rkd_distance(t, s, 0.05), numpy_rkd_distance(t, s, 1.0))
