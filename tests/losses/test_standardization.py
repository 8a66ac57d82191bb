import numpy as np
from keras import ops

import keras_distill as kd

RNG = np.random.default_rng(5)


def test_z_scores_with_the_unbiased_deviation():
    logits = (RNG.normal(size=(4, 7)) * 5 + 3).astype("float32")
    expected = (logits - logits.mean(-1, keepdims=True)) / (logits.std(-1, ddof=1, keepdims=True) + 1e-7)
    value = ops.convert_to_numpy(kd.losses.standardize_logits(logits))
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    # Invariant to shifting and scaling either model's logits.
    np.testing.assert_allclose(ops.convert_to_numpy(kd.losses.standardize_logits(3.0 * logits - 8.0)), value, atol=1e-5)
    sequence = RNG.normal(size=(2, 3, 7)).astype("float16")
    out = kd.losses.standardize_logits(sequence)
    assert ops.convert_to_numpy(out).dtype == np.float32 and out.shape == (2, 3, 7)
