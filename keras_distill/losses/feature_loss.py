"""The base class of the losses between a teacher's and a student's features."""

import keras
from keras import ops


def describe(shape):
    """`(batch, 7, 7, 64)` for a shape whose first axis is the batch."""
    return "(batch, " + ", ".join(map(str, tuple(shape)[1:])) + ")"


def as_float32(features):
    return keras.tree.map_structure(lambda x: ops.cast(x, "float32"), features)


def resolve_data_format(data_format):
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "`data_format` must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format!r}."
        )
    return data_format


class FeatureLoss(keras.losses.Loss):
    """Base class of the losses between intermediate features.

    A `FeatureLoss` is an ordinary `keras.losses.Loss` whose `y_true` is the
    teacher's feature (or tuple of features) and `y_pred` the student's,
    returning one value per example, computed in float32. A feature
    distiller calls `check_shapes` at construction, so that features that
    cannot be compared are reported before any training.

    Args:
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.
    """

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype or "float32")

    def check_shapes(self, teacher_shape, student_shape):
        """Raises a `ValueError` unless the two features can be compared.

        The default asks for equal shapes (the batch axis aside).
        """
        check_same_shape(teacher_shape, student_shape, type(self).__name__)


def check_same_shape(teacher_shape, student_shape, loss_name):
    teacher_shape, student_shape = tuple(teacher_shape), tuple(student_shape)
    compatible = len(teacher_shape) == len(student_shape) and all(
        t is None or s is None or t == s
        for t, s in zip(teacher_shape[1:], student_shape[1:])
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
