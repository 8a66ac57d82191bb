"""5. Numbers that cannot work are refused, with the range that works."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import make_pair

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize("temperature", [1e-50, 1e39, 0.001, 5000.0])
def test_temperatures_that_overflow_float32_are_refused(temperature):
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match=r"in \[0.01, 1000\].*float32"):
        distiller.compile(optimizer="sgd", loss=SCCE, temperature=temperature)
    distiller.compile(optimizer="sgd", loss=SCCE, temperature=2.0)
    with pytest.raises(ValueError, match=r"in \[0.01, 1000\]"):
        distiller.temperature = temperature
    with pytest.raises(ValueError, match=r"in \[0.01, 1000\]"):
        kd.losses.SoftTargetKLDivergence(temperature=temperature)
    with pytest.raises(ValueError, match=r"in \[0.01, 1000\]"):
        kd.MutualLearner([make_mlp(8, name="a"), make_mlp(8, name="b")], temperature=temperature)


def test_float16_caches_of_large_logits_and_integer_caches_are_refused(digits):
    (x, y), _ = digits
    x, y = x[:32], y[:32]
    inputs = keras.Input((64,))
    loud = keras.Model(inputs, keras.layers.Dense(10, kernel_initializer=keras.initializers.Constant(3e4))(inputs))
    with pytest.raises(ValueError, match="float16 holds values up to 65504.*dtype='float32'"):
        kd.precompute_teacher_outputs(loud, x, dtype="float16")
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE)
    logits = kd.precompute_teacher_outputs(teacher, x)
    with pytest.raises(ValueError, match="dtype int64; logits are floating point"):
        distiller.fit(x, kd.with_teacher_outputs(y, np.round(logits).astype("int64")), verbose=0)
    infinite = logits.astype("float16")
    infinite[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        distiller.fit(x, kd.with_teacher_outputs(y, infinite), verbose=0)


def test_top_k_indices_outside_the_students_classes_are_refused(digits):
    (x, y), _ = digits
    x, y = x[:32], y[:32]
    student, teacher = make_pair()
    cache = kd.precompute_teacher_outputs(teacher, x, top_k=3)
    cache["top_k_indices"][0, 0] = 10
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE)
    with pytest.raises(ValueError, match=r"top-k indices run from \d to 10.*10 classes"):
        distiller.fit(x, kd.with_teacher_outputs(y, cache), verbose=0)
