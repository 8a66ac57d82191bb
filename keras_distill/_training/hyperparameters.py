"""alpha and temperature: defaults, validation and the variables that hold them."""

import keras
import numpy as np

from keras_distill._defaults import DEFAULT_ALPHA  # noqa: F401 (re-exported)
from keras_distill._defaults import DEFAULT_TEMPERATURE  # noqa: F401 (re-exported)
from keras_distill._validate import check_number
from keras_distill.losses.base import LogitLoss
from keras_distill.losses.base import check_temperature


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
    own = loss.temperature if isinstance(loss, LogitLoss) and loss.uses_temperature else None
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


class SoftTargetSettingsMixin:
    """`alpha` and `temperature` as float properties over a distiller's
    variables `_alpha` and `_temperature`, checked when set."""

    @property
    def alpha(self):
        """The weight of the hard-label loss, a float in [0, 1]."""
        return as_float(self._alpha)

    @alpha.setter
    def alpha(self, value):
        value = check_alpha(value)
        if value > 0 and self.compiled and self._student_loss is None:
            raise ValueError(
                f"Cannot set alpha={value}: the distiller was compiled with "
                "loss=None, so there is no hard-label loss to weight. "
                "Recompile with a loss, e.g. loss=keras.losses."
                "SparseCategoricalCrossentropy(from_logits=True)."
            )
        self._alpha.assign(value)

    @property
    def temperature(self):
        """The softmax temperature of the distillation loss, a float > 0."""
        return as_float(self._temperature)

    @temperature.setter
    def temperature(self, value):
        self._temperature.assign(check_temperature(value))
