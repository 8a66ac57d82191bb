"""Logit matching of Ba & Caruana (2014): regress the teacher's logits."""

import keras
from keras import ops

from keras_distill.losses.base import LogitLoss


def logit_matching(teacher_logits, student_logits, *, center=True):
    """Mean squared error between the logits, per example.

    Args:
        teacher_logits: Tensor of shape `(..., num_classes)`.
        student_logits: Tensor of the same shape.
        center: bool. Subtract each example's mean logit from both models'
            logits first, so that, like the softmax, the loss ignores a
            constant added to either model's logits (Hinton et al. show that
            soft-target distillation tends to this loss on zero-meaned
            logits as the temperature grows). `False` regresses raw logits.

    Returns:
        A float32 tensor of shape `teacher_logits.shape[:-1]`.
    """
    teacher_logits = ops.cast(teacher_logits, "float32")
    student_logits = ops.cast(student_logits, "float32")
    if center:
        teacher_logits = teacher_logits - ops.mean(teacher_logits, axis=-1, keepdims=True)
        student_logits = student_logits - ops.mean(student_logits, axis=-1, keepdims=True)
    return ops.mean(ops.square(student_logits - teacher_logits), axis=-1)


@keras.saving.register_keras_serializable(package="keras_distill")
class LogitMatching(LogitLoss):
    """Mean squared error on logits (Ba & Caruana, 2014).

    `y_true` is the teacher's logits and `y_pred` the student's logits. It
    takes no temperature: a `keras_distill.Distiller` compiled with it
    ignores its own temperature.

    Args:
        center: bool. Compare zero-mean logits (default), which makes the
            loss invariant to a constant shift of either model's logits.
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Examples:

    >>> loss = keras_distill.losses.LogitMatching()
    >>> loss([[2.0, 1.0, 0.1]], [[1.0, 1.0, 1.0]])

    Reference:
        - [Ba & Caruana, 2014](https://arxiv.org/abs/1312.6184)
    """

    def __init__(
        self,
        center=True,
        reduction="sum_over_batch_size",
        name="logit_matching",
        dtype=None,
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.center = bool(center)

    def call(self, y_true, y_pred):
        return logit_matching(y_true, y_pred, center=self.center)

    def get_config(self):
        return {**super().get_config(), "center": self.center}
