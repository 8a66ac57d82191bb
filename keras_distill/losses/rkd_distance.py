"""The distance-wise loss of relational knowledge distillation."""

import keras
from keras import ops

from keras_distill.losses.relational import DISTANCE_EPSILON
from keras_distill.losses.relational import RelationalLoss
from keras_distill.losses.relational import flatten
from keras_distill.losses.relational import huber


def _normalized_distances(features):
    features = flatten(features)
    squared = ops.sum(ops.square(features), axis=-1)
    distances = (
        ops.expand_dims(squared, 0)
        + ops.expand_dims(squared, 1)
        - 2.0 * ops.matmul(features, ops.transpose(features))
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
