"""The base class of every keras_distill loss that compares two models."""

import math

import keras
from keras import ops


def validate_temperature(temperature):
    """Raises a `ValueError` unless `temperature` is a finite number > 0."""
    if isinstance(temperature, bool) or not isinstance(
        temperature, (int, float)
    ):
        raise TypeError(
            "`temperature` must be a Python number. "
            f"Received: temperature={temperature!r} "
            f"(of type {type(temperature).__name__}). "
            "Use e.g. temperature=2.0."
        )
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(
            "`temperature` must be a finite number > 0. "
            f"Received: temperature={temperature}. Use e.g. temperature=2.0."
        )
    return float(temperature)


def soften(logits, temperature):
    """Returns float32 log-probabilities of `logits / temperature`."""
    logits = ops.cast(logits, "float32")
    temperature = ops.cast(temperature, "float32")
    return ops.log_softmax(logits / temperature, axis=-1)


class DistillationLoss(keras.losses.Loss):
    """Base class of the losses between a teacher's and a student's logits.

    A `DistillationLoss` is an ordinary `keras.losses.Loss` (so `reduction`,
    `sample_weight` and distribution scaling come from Keras) whose
    `y_true` is the teacher's logits and `y_pred` the student's logits, both
    of shape `(..., num_classes)`. It is computed in float32 whatever the
    dtype of its inputs, so it is safe under mixed precision.

    Subclasses that soften their inputs set `uses_temperature = True` and
    read `self.temperature`; a `keras_distill.Distiller` replaces that
    attribute with its own temperature variable, so schedulers can change
    it between epochs without retracing.

    Args:
        temperature: float > 0. The softmax temperature, for subclasses that
            use one.
        reduction: Type of reduction to apply to the loss, as in
            `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.
    """

    uses_temperature = False

    def __init__(
        self,
        temperature=None,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if self.uses_temperature:
            self.temperature = validate_temperature(temperature)
        elif temperature is not None:
            raise ValueError(
                f"`{type(self).__name__}` takes no temperature. "
                f"Received: temperature={temperature}. Remove the argument."
            )

    def get_config(self):
        config = super().get_config()
        if self.uses_temperature:
            temperature = self.temperature
            if not isinstance(temperature, (int, float)):
                temperature = float(ops.convert_to_numpy(temperature))
            config["temperature"] = temperature
        return config
