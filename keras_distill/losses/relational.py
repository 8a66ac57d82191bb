"""Relational knowledge distillation (Park et al., 2019): the distance-wise
and angle-wise losses, compared within a batch."""

import keras
from keras import ops

from keras_distill._validate import check_number
from keras_distill.losses.base import FeatureLoss

# The authors' floors: squared distances below it, and F.normalize's.
DISTANCE_EPSILON = 1e-12


def flatten(features):
    features = ops.cast(features, "float32")
    return ops.reshape(features, (ops.shape(features)[0], -1))


def huber(difference, delta):
    """The Huber loss (PyTorch's smooth L1 when `delta=1`) of a difference."""
    absolute = ops.abs(difference)
    return ops.where(
        absolute < delta,
        0.5 * ops.square(difference) / delta,
        absolute - 0.5 * delta,
    )


class RelationalLoss(FeatureLoss):
    """Base of the RKD losses: any feature shapes, compared within a batch.

    Subclasses set `function`, the functional twin `(teacher, student, *,
    delta)`, as the soft-target losses do.
    """

    def __init__(self, *, delta, reduction, name, dtype):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.delta = check_number(delta, "delta", example=1.0, above=0)

    def call(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, delta=self.delta)

    def check_shapes(self, teacher_shape, student_shape):
        # Relations between examples have the batch's shape, whatever the
        # features' widths.
        return None

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


def _normalized_distances(features):
    features = flatten(features)
    squared = ops.sum(ops.square(features), axis=-1)
    distances = (
        ops.expand_dims(squared, 0) + ops.expand_dims(squared, 1) - 2.0 * ops.matmul(features, ops.transpose(features))
    )
    distances = ops.sqrt(ops.maximum(distances, DISTANCE_EPSILON))
    off_diagonal = 1.0 - ops.eye(ops.shape(features)[0], dtype="float32")
    distances = distances * off_diagonal
    positive = ops.cast(distances > 0, "float32")
    mean = ops.sum(distances) / ops.maximum(ops.sum(positive), 1.0)
    return distances / mean


def rkd_distance(teacher_features, student_features, *, delta=1.0):
    """Huber loss between the two batches' normalized pairwise distances.

    Distances between every two examples of the batch are divided by their
    mean over distinct pairs, for each model; the loss of example `i` is the
    mean over `j` of `huber(d_student[i, j] - d_teacher[i, j])`.

    Args:
        teacher_features: Tensor `(batch, ...)`, flattened per example.
        student_features: Tensor `(batch, ...)`; its width may differ.
        delta: Threshold of the Huber loss. Defaults to 1.0.

    Returns:
        A float32 tensor of shape `(batch,)`.
    """
    teacher = ops.stop_gradient(_normalized_distances(teacher_features))
    student = _normalized_distances(student_features)
    return ops.mean(huber(student - teacher, delta), axis=-1)


@keras.saving.register_keras_serializable(package="keras_distill")
class RKDDistance(RelationalLoss):
    """Relational KD, distance-wise: match the batch's pairwise distances.

    Args:
        delta: Threshold of the Huber loss. Defaults to 1.0.
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Reference:
        - [Park et al., 2019](https://arxiv.org/abs/1904.05068)
    """

    function = staticmethod(rkd_distance)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="rkd_distance", dtype=None):
        super().__init__(delta=delta, reduction=reduction, name=name, dtype=dtype)


def _angles(features):
    """`cos` of the angle at `i` between `j` and `k`: shape (batch, batch, batch)."""
    features = flatten(features)
    differences = ops.expand_dims(features, 0) - ops.expand_dims(features, 1)
    # The floor inside the sqrt keeps the gradient finite at x_i - x_i = 0.
    norms = ops.sqrt(
        ops.maximum(
            ops.sum(ops.square(differences), axis=-1, keepdims=True),
            DISTANCE_EPSILON,
        )
    )
    directions = differences / norms
    return ops.einsum("ijd,ikd->ijk", directions, directions)


def rkd_angle(teacher_features, student_features, *, delta=1.0):
    """Huber loss between the angles formed by every triplet of examples.

    For each anchor `i`, the cosine of the angle between `x_j - x_i` and
    `x_k - x_i`; the loss of example `i` is the mean over `(j, k)` of
    `huber(cos_student - cos_teacher)`.

    Args:
        teacher_features: Tensor `(batch, ...)`, flattened per example.
        student_features: Tensor `(batch, ...)`; its width may differ.
        delta: Threshold of the Huber loss. Defaults to 1.0.

    Returns:
        A float32 tensor of shape `(batch,)`. Memory grows as
        batch^2 * width and batch^3.
    """
    teacher = ops.stop_gradient(_angles(teacher_features))
    student = _angles(student_features)
    return ops.mean(huber(student - teacher, delta), axis=(1, 2))


@keras.saving.register_keras_serializable(package="keras_distill")
class RKDAngle(RelationalLoss):
    """Relational KD, angle-wise: match the angles of example triplets.

    Args:
        delta: Threshold of the Huber loss. Defaults to 1.0.
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Reference:
        - [Park et al., 2019](https://arxiv.org/abs/1904.05068)
    """

    function = staticmethod(rkd_angle)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="rkd_angle", dtype=None):
        super().__init__(delta=delta, reduction=reduction, name=name, dtype=dtype)
