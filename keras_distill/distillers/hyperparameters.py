"""alpha and temperature: defaults, validation and reading them back."""

import math

import keras
import numpy as np

from keras_distill import losses as losses_module
from keras_distill.losses.distillation_loss import validate_temperature

# Defaults measured with `keras-distill demo` (Fashion-MNIST, 784-1200-1200-10
# teacher, 784-32-10 student): small students want low temperatures.
DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 2.0

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_TEMPERATURE",
    "add_hyperparameter",
    "as_float",
    "resolve_temperature",
    "validate_alpha",
    "validate_temperature",
]


def add_hyperparameter(layer, name, value):
    """A float32 scalar variable of `layer`, even under mixed precision: a
    variable, so that a new value reaches the compiled step without
    retracing it."""
    return layer.add_weight(
        shape=(),
        initializer=keras.initializers.Constant(value),
        dtype="float32",
        trainable=False,
        autocast=False,
        name=name,
    )


def validate_alpha(alpha):
    """Returns `alpha` as a float, or raises if it is not a number in [0, 1]."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(
            "`alpha` must be a Python number in [0, 1]. Received: "
            f"alpha={alpha!r} (of type {type(alpha).__name__}). "
            "Use e.g. alpha=0.5."
        )
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(
            "`alpha` is the weight of the hard-label loss and must be in "
            f"[0, 1]. Received: alpha={alpha}. Use e.g. alpha=0.5 "
            "(alpha=0 distills only, alpha=1 ignores the teacher)."
        )
    return float(alpha)


def resolve_temperature(identifier, resolved, temperature):
    """The temperature to use, given compile()'s `temperature` argument and
    the `distillation_loss` it was given (`identifier`, resolved to a loss).

    A keras_distill loss object passed in carries its own temperature, used
    when compile() names none; two different temperatures are refused.
    """
    own = getattr(resolved, "temperature", None)
    given = isinstance(identifier, losses_module.DistillationLoss)
    if temperature is None:
        return own if (given and own is not None) else DEFAULT_TEMPERATURE
    temperature = validate_temperature(temperature)
    if given and own is not None and own != temperature:
        raise ValueError(
            f"Two temperatures were given: temperature={temperature} and "
            f"distillation_loss={type(resolved).__name__}(temperature="
            f"{own}). Give one of them, e.g. drop `temperature` from "
            "compile()."
        )
    return temperature


def as_float(variable):
    """A float32 variable's value as the shortest float that round-trips,
    so that a distiller given alpha=0.7 reports 0.7, not 0.699999988."""
    return float(str(np.float32(variable.numpy())))
