"""The angle-wise loss of relational knowledge distillation."""

import keras
from keras import ops

from keras_distill.losses.relational import DISTANCE_EPSILON
from keras_distill.losses.relational import RelationalLoss
from keras_distill.losses.relational import flatten
from keras_distill.losses.relational import huber


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
