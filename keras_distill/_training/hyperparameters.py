"""Hyper-parameters that change during training (`alpha`, `temperature`,
`feature_weight`, ...) live in variables: a new value reaches the compiled
step without retracing it."""

import keras
import numpy as np


def add_hyperparameter(layer, name, value):
    """A float32 scalar variable of `layer`, even under mixed precision."""
    return layer.add_weight(
        shape=(),
        initializer=keras.initializers.Constant(value),
        dtype="float32",
        trainable=False,
        autocast=False,
        name=name,
    )


def as_float(variable):
    """A float32 variable's value as the shortest float that round-trips,
    so that a distiller given alpha=0.7 reports 0.7, not 0.699999988."""
    return float(str(np.float32(variable.numpy())))
