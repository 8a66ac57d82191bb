"""DistilBERT's hidden-state loss: one minus the cosine similarity."""

import keras
from keras import ops

from keras_distill.losses.base import FeatureLoss
from keras_distill.losses.base import as_float32


def cosine_distance(teacher_features, student_features):
    """`1 - cos(teacher, student)` over the last axis, per position.

    Args:
        teacher_features: Tensor of shape `(..., width)`.
        student_features: Tensor of the same shape.

    Returns:
        A float32 tensor of shape `teacher_features.shape[:-1]`, in [0, 2].
    """
    teacher = ops.normalize(as_float32(teacher_features), axis=-1, epsilon=1e-12)
    student = ops.normalize(as_float32(student_features), axis=-1, epsilon=1e-12)
    return 1.0 - ops.sum(teacher * student, axis=-1)


@keras.saving.register_keras_serializable(package="keras_distill")
class CosineDistance(FeatureLoss):
    """`cosine_distance` as a loss: DistilBERT's cosine embedding loss.

    For transformer hidden states `(batch, tokens, width)` it is computed
    per token, so a feature distiller averages it over real tokens only.
    Called directly, features of other shapes are refused with both shapes
    named (as by every `keras_distill.losses.FeatureLoss`). Unlike
    `keras.losses.CosineSimilarity` (which returns `-cos`), it is 0 when the
    directions agree.

    Args:
        reduction: As in `keras.losses.Loss`.
        name: Optional name of the loss.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Reference:
        - [Sanh et al., 2019 (DistilBERT)](https://arxiv.org/abs/1910.01108)
    """

    def __init__(self, reduction="sum_over_batch_size", name="cosine_distance", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        return cosine_distance(y_true, y_pred)
