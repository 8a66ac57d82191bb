import keras
import numpy as np
import pytest

import keras_distill as kd


@keras.saving.register_keras_serializable(package="keras_distill_tests")
def halving(epoch):
    return 8.0 * 0.5**epoch


@pytest.mark.parametrize("cls", [kd.callbacks.TemperatureScheduler, kd.callbacks.AlphaScheduler])
def test_config_round_trip(cls):
    callback = cls(halving, verbose=1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(callback))
    assert type(restored) is cls and restored.schedule is halving and restored.verbose == 1


def test_schedule_must_be_callable():
    with pytest.raises(TypeError, match="schedule=4.0"):
        kd.callbacks.TemperatureScheduler(4.0)


def test_needs_a_distiller():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="keras_distill.Distiller"):
        model.fit(np.ones((2, 2)), np.ones((2, 2)), verbose=0, callbacks=[kd.callbacks.TemperatureScheduler(halving)])


def test_linear_warmup_brings_the_teacher_in():
    schedule = kd.callbacks.linear_warmup(4, end=0.2)
    np.testing.assert_allclose([schedule(epoch) for epoch in range(6)], [0.8, 0.6, 0.4, 0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="end=1.5"):
        kd.callbacks.linear_warmup(4, end=1.5)
