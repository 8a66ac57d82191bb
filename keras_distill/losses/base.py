"""The two base classes of keras_distill's losses, and what they share.

`LogitLoss` compares a teacher's and a student's logits (the
`distillation_loss` of a distiller); `FeatureLoss` compares intermediate
features (the `feature_loss` of a feature distiller). Both are ordinary
`keras.losses.Loss` subclasses computed in float32.
"""

import keras
from keras import ops

from keras_distill._validate import check_number

# Outside this range float32 breaks: below it, logits / T overflow to inf
# (T = 1e-50 gives NaN losses); above it, T^2 overflows (T = 1e39) or every
# softened distribution is uniform to float32's precision.
MIN_TEMPERATURE = 1e-2
MAX_TEMPERATURE = 1e3


def check_temperature(temperature):
    """A temperature as a float, or a `keras.Variable` holding one, unchanged.

    A distiller builds its losses with its own temperature variable, so that
    a scheduler's new value reaches the compiled step without retracing.
    """
    if isinstance(temperature, keras.Variable):
        return temperature
    return check_number(
        temperature,
        "temperature",
        example=2.0,
        at_least=MIN_TEMPERATURE,
        at_most=MAX_TEMPERATURE,
        note="Outside this range float32 softmax overflows or flattens every distribution.",
    )


def temperature_value(temperature):
    """A float, whether `temperature` is a float or a variable."""
    if isinstance(temperature, keras.Variable):
        return float(ops.convert_to_numpy(temperature))
    return float(temperature)


def soften(logits, temperature):
    """Float32 log-probabilities of `logits / temperature`."""
    logits = ops.cast(logits, "float32")
    temperature = ops.cast(temperature, "float32")
    return ops.log_softmax(logits / temperature, axis=-1)


def check_logit_shapes(teacher_logits, student_logits, loss_name):
    """Raises a `ValueError` unless the two models' logits have one shape
    (sizes not known until the step match any)."""
    teacher_shape, student_shape = (
        tuple(value.shape) if hasattr(value, "shape") else ops.shape(ops.convert_to_tensor(value))
        for value in (teacher_logits, student_logits)
    )
    if len(teacher_shape) == len(student_shape) and all(
        t is None or s is None or t == s for t, s in zip(teacher_shape, student_shape)
    ):
        return
    raise ValueError(
        f"{loss_name} compares the teacher's and the student's logits class by class, so they need one shape. "
        f"Received: teacher_logits of shape {teacher_shape} and student_logits of shape {student_shape}. Give "
        "both models the same number of classes (and the same leading axes)."
    )


def tempered(divergence, teacher_logits, student_logits, temperature, name):
    """`T^2 * divergence(log p_teacher, log p_student)`, both softened at T.

    The one place where the softmax-based losses apply Hinton et al.'s T^2
    factor, which keeps the gradients' scale independent of T. `name` (the
    loss's) is the one a shape error gives.
    """
    check_logit_shapes(teacher_logits, student_logits, name)
    temperature = ops.cast(temperature, "float32")
    value = divergence(soften(teacher_logits, temperature), soften(student_logits, temperature))
    return ops.square(temperature) * value


def kl_from_log_probs(log_p, log_q):
    """`KL(p || q)` over the last axis, from log-probabilities."""
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)


class LogitLoss(keras.losses.Loss):
    """Base class of the losses between a teacher's and a student's logits.

    An ordinary `keras.losses.Loss` (so `reduction`, `sample_weight` and
    distribution scaling come from Keras) whose `y_true` is the teacher's
    logits and `y_pred` the student's logits, both of shape
    `(..., num_classes)`, computed in float32 whatever their dtype.

    Subclasses that soften their inputs set `uses_temperature = True` and
    read `self.temperature`, a float or a `keras.Variable`: a distiller
    builds its own copy of the loss with its temperature variable. Losses
    that also need the labels set `needs_labels = True` and receive
    `y_true = (teacher_logits, labels)`.

    Args:
        temperature: float > 0 or a scalar `keras.Variable`, for subclasses
            that use one.
        reduction: As in `keras.losses.Loss`. Defaults to
            `"sum_over_batch_size"`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.
    """

    uses_temperature = False
    needs_labels = False

    def __init__(self, temperature=None, reduction="sum_over_batch_size", name=None, dtype=None):
        # Keras would take floatx, and cast the teacher's logits to it.
        super().__init__(name=name, reduction=reduction, dtype=dtype or "float32")
        if self.uses_temperature:
            self.temperature = check_temperature(temperature)
        elif temperature is not None:
            raise ValueError(
                f"`{type(self).__name__}` takes no temperature. "
                f"Received: temperature={temperature}. Remove the argument."
            )

    def get_config(self):
        config = super().get_config()
        if self.uses_temperature:
            config["temperature"] = temperature_value(self.temperature)
        return config


def describe(shape):
    """`(batch, 7, 7, 64)` for a shape whose first axis is the batch."""
    return "(batch, " + ", ".join(map(str, tuple(shape)[1:])) + ")"


def as_float32(features):
    return keras.tree.map_structure(lambda x: ops.cast(x, "float32"), features)


def resolve_data_format(data_format):
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"`data_format` must be 'channels_last' or 'channels_first'. Received: data_format={data_format!r}."
        )
    return data_format


class FeatureLoss(keras.losses.Loss):
    """Base class of the losses between intermediate features.

    An ordinary `keras.losses.Loss` whose `y_true` is the teacher's feature
    (or tuple of features) and `y_pred` the student's, returning one value
    per example, computed in float32. A feature distiller calls
    `check_shapes` at construction, so that features that cannot be
    compared are reported before any training.

    Args:
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.
    """

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype or "float32")

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Called directly, features that cannot be compared are refused
        # with the fix, not with a backend's broadcasting error.
        if hasattr(y_true, "shape") and hasattr(y_pred, "shape"):
            self.check_shapes(tuple(y_true.shape), tuple(y_pred.shape))
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def check_shapes(self, teacher_shape, student_shape):
        """Raises a `ValueError` unless the two features can be compared.

        The default asks for equal shapes (the batch axis aside).
        """
        check_same_shape(teacher_shape, student_shape, type(self).__name__)


def check_same_shape(teacher_shape, student_shape, loss_name):
    teacher_shape, student_shape = tuple(teacher_shape), tuple(student_shape)
    compatible = len(teacher_shape) == len(student_shape) and all(
        t is None or s is None or t == s for t, s in zip(teacher_shape[1:], student_shape[1:])
    )
    if not compatible:
        raise ValueError(
            f"{loss_name} compares features of equal shape. Received: teacher "
            f"feature {describe(teacher_shape)} and student feature "
            f"{describe(student_shape)}. Tap layers of matching shapes, or "
            "map the student's feature to the teacher's shape with a "
            "projection (e.g. projections='auto', or "
            "keras_distill.HintDistiller, which learns a regressor)."
        )
