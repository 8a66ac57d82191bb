import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import numpy_top_k_kl
from tests.conftest import trl_top_k

RNG = np.random.default_rng(1)


TEACHER = (RNG.normal(size=(4, 3, 7)) * 3).astype("float32")


STUDENT = (RNG.normal(size=(4, 3, 7)) * 3).astype("float32")


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_top_k_loss(temperature):
    dense = ops.convert_to_numpy(kd.losses.soft_target_kl_divergence(TEACHER, STUDENT, temperature=temperature))
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 7)
    full = kd.losses.top_k_kl_divergence(indices, log_probs, STUDENT, temperature=temperature)
    np.testing.assert_allclose(ops.convert_to_numpy(full), dense, rtol=1e-4, atol=1e-5)
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 3)
    sparse = ops.convert_to_numpy(kd.losses.top_k_kl_divergence(indices, log_probs, STUDENT, temperature=temperature))
    np.testing.assert_allclose(sparse, numpy_top_k_kl(TEACHER, STUDENT, 3, temperature), rtol=1e-4, atol=1e-5)
    assert np.all(sparse >= -1e-6)


def test_the_top_k_loss_round_trips_its_temperature():
    loss = kd.losses.TopKKLDivergence(temperature=3.5, name="top_k")
    restored = kd.losses.TopKKLDivergence.from_config(loss.get_config())
    assert restored.get_config() == loss.get_config() and restored.get_config()["temperature"] == 3.5
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 3)
    packed = kd.losses.pack_top_k(indices, log_probs)
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(packed, STUDENT)), numpy_top_k_kl(TEACHER, STUDENT, 3, 3.5).mean(), rtol=1e-4
    )


@pytest.mark.parametrize(
    "divergence, beta", [("kl", 0.0), ("reverse_kl", 1.0), ("jsd", 0.5), ("jsd", 0.1), ("jsd", 0.9)]
)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_divergences_match_trl_on_the_same_numbers(divergence, beta, k):
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, k)
    got = kd.losses.top_k_divergence(
        indices, log_probs, STUDENT, divergence=divergence, beta=beta if divergence == "jsd" else 0.5
    )
    # float32 against float64: a teacher rest of 5e-5 (k=5) is known to ~0.1%
    # in float32 (4e-6 at k=6: ~1%), and the reverse KL reads its logarithm.
    np.testing.assert_allclose(ops.convert_to_numpy(got), trl_top_k(TEACHER, STUDENT, k, beta), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_top_k_divergences_over_the_whole_vocabulary_are_the_dense_ones(temperature):
    indices, log_probs = kd.losses.top_k_teacher(TEACHER, 7)
    dense = {
        "reverse_kl": kd.losses.soft_target_reverse_kl(TEACHER, STUDENT, temperature=temperature),
        "jsd": kd.losses.generalized_jsd(TEACHER, STUDENT, beta=0.3, temperature=temperature),
    }
    for divergence, expected in dense.items():
        got = kd.losses.top_k_divergence(
            indices, log_probs, STUDENT, divergence=divergence, beta=0.3, temperature=temperature
        )
        np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-5)


def test_each_loss_has_its_top_k_counterpart_and_the_others_none():
    assert kd.losses.top_k_counterpart(kd.losses.GeneralizedJSD(beta=0.2)).get_config()["beta"] == 0.2
    assert kd.losses.top_k_counterpart(kd.losses.SoftTargetReverseKL()).divergence == "reverse_kl"
    assert kd.losses.top_k_counterpart(kd.losses.SoftTargetKLDivergence()).divergence == "kl"
    assert kd.losses.top_k_counterpart(kd.losses.DIST()) is None
    loss = kd.losses.TopKDivergence("jsd", beta=0.25, temperature=2.0)
    assert kd.losses.TopKDivergence.from_config(loss.get_config()).get_config() == loss.get_config()
    with pytest.raises(ValueError, match="`divergence` must be one of"):
        kd.losses.TopKDivergence("tvd")


def test_counterparts_keep_the_divergence_beta_and_shared_temperature():
    temperature = keras.Variable(2.0, trainable=False)
    jsd = kd.losses.top_k_counterpart(kd.losses.GeneralizedJSD(beta=0.2, temperature=temperature))
    reverse = kd.losses.top_k_counterpart(kd.losses.SoftTargetReverseKL(temperature=temperature))
    forward = kd.losses.top_k_counterpart(kd.losses.SoftTargetKLDivergence(temperature=temperature))
    assert (jsd.divergence, jsd.beta, reverse.divergence, forward.divergence) == ("jsd", 0.2, "reverse_kl", "kl")
    assert jsd.temperature is temperature and reverse.temperature is temperature and forward.temperature is temperature


def test_top_k_kl_loads_a_top_k_divergence_config_and_refuses_the_rest():
    """A `TopKDivergence("kl")` config (with its divergence and beta) loads
    as `TopKKLDivergence`; another divergence or an unknown argument is an
    error, not silently dropped."""
    config = kd.losses.TopKDivergence("kl", temperature=3.0).get_config()
    loss = kd.losses.TopKKLDivergence.from_config(config)
    assert (loss.divergence, loss.get_config()["temperature"]) == ("kl", 3.0)
    with pytest.raises(
        ValueError,
        match=r"`divergence` must be one of \('kl',\)\. Received: divergence='jsd'\. Use e\.g\. divergence='kl'\. "
        r"Use keras_distill\.losses\.TopKDivergence for the others\.$",
    ):
        kd.losses.TopKKLDivergence(divergence="jsd")
    with pytest.raises(TypeError, match=r"TopKKLDivergence got unexpected arguments \['temprature'\]"):
        kd.losses.TopKKLDivergence(temprature=3.0)


def test_indices_beyond_float16_precision_under_floatx_float16():
    """Token ids above 2048 are not exact in float16: with floatx float16,
    the packed cache and the top-k indices stay exact (float32, int32)."""
    vocabulary = 5000
    rng = np.random.default_rng(5)
    teacher = rng.normal(size=(3, vocabulary)).astype("float32") * 3
    teacher[:, 4093:4096] += 20.0  # the top 3 are ids 4093-4095
    student = rng.normal(size=(3, vocabulary)).astype("float32") * 3
    expected = ops.convert_to_numpy(
        kd.losses.TopKDivergence()(kd.losses.pack_top_k(*kd.losses.top_k_teacher(teacher, 3)), student)
    )
    floatx = keras.config.floatx()
    keras.config.set_floatx("float16")
    try:
        indices, log_probs = kd.losses.top_k_teacher(teacher, 3)
        packed = kd.losses.pack_top_k(indices, log_probs)
        value = kd.losses.TopKDivergence()(packed, student)
    finally:
        keras.config.set_floatx(floatx)
    assert sorted(ops.convert_to_numpy(indices)[0].tolist()) == [4093, 4094, 4095]
    assert keras.backend.standardize_dtype(indices.dtype) == "int32"
    assert keras.backend.standardize_dtype(packed.dtype) == "float32"
    np.testing.assert_array_equal(ops.convert_to_numpy(packed)[:, 3:], ops.convert_to_numpy(log_probs))
    assert keras.backend.standardize_dtype(log_probs.dtype) == "float32"
    np.testing.assert_allclose(ops.convert_to_numpy(value), expected, rtol=1e-4)
