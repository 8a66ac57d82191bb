import keras
import numpy as np

import keras_distill as kd

RNG = np.random.default_rng(0)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


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


def test_rkd_distance_and_angle():
    t, s = RNG.normal(size=(5, 6)), RNG.normal(size=(5, 3))
    np.testing.assert_allclose(_numpy(kd.losses.rkd_distance(t, s)), numpy_rkd_distance(t, s), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_numpy(kd.losses.rkd_angle(t, s)), numpy_rkd_angle(t, s), rtol=1e-4, atol=1e-6)
    # Relations ignore the features' scale: a scaled student has the same loss.
    np.testing.assert_allclose(_numpy(kd.losses.RKDDistance()(t, 3.0 * s)), numpy_rkd_distance(t, s).mean(), rtol=1e-4)
    np.testing.assert_allclose(_numpy(kd.losses.RKDAngle()(t, 3.0 * s)), numpy_rkd_angle(t, s).mean(), rtol=1e-4)
