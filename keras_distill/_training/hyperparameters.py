"""alpha and temperature: defaults, validation and the variables that hold them."""

import keras
import numpy as np

from keras_distill._validate import check_number
from keras_distill.losses.base import DistillationLoss
from keras_distill.losses.base import check_temperature

# Defaults measured with `keras-distill demo` (Fashion-MNIST, 784-1200-1200-10
# teacher, 784-32-10 student): small students want low temperatures.
DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 2.0


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


def check_alpha(alpha):
    """`alpha` as a float, or an error unless it is a number in [0, 1]."""
    return check_number(
        alpha,
        "alpha",
        example=0.5,
        at_least=0.0,
        at_most=1.0,
        note="alpha is the weight of the hard-label loss: alpha=0 distills only, alpha=1 ignores the teacher.",
    )


def check_weight(value, argument):
    """A loss weight (`feature_weight`, `hint_weight`, ...): a number >= 0."""
    return check_number(value, argument, example=1.0, at_least=0.0)


def resolve_temperature(loss, temperature):
    """The temperature a distiller uses, from compile()'s `temperature` and
    the `distillation_loss` it was given (a name, or an object).

    A keras_distill loss object passed in carries its own temperature, used
    when compile() names none; two different temperatures are refused. A
    loss given by name has no temperature of its own.
    """
    own = loss.temperature if isinstance(loss, DistillationLoss) and loss.uses_temperature else None
    if temperature is None:
        return DEFAULT_TEMPERATURE if own is None else float(own)
    temperature = check_temperature(temperature)
    if own is not None and own != temperature:
        raise ValueError(
            f"Two temperatures were given: temperature={temperature} and "
            f"distillation_loss={type(loss).__name__}(temperature="
            f"{own}). Give one of them, e.g. drop `temperature` from "
            "compile()."
        )
    return temperature


def as_float(variable):
    """A float32 variable's value as the shortest float that round-trips,
    so that a distiller given alpha=0.7 reports 0.7, not 0.699999988."""
    return float(str(np.float32(variable.numpy())))
