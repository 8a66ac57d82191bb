"""The FitNets hint loss (Romero et al., 2015)."""

import keras
from keras import ops

from keras_distill.losses.base import FeatureLoss


def hint_loss(teacher_features, student_features):
    """Half the squared L2 distance between two features, per example.

    `L_HT = 1/2 * ||u_h(x) - r(v_g(x))||^2`: the student's feature is
    expected to have gone through the regressor already.

    Args:
        teacher_features: Tensor of shape `(batch, ...)`, the hint.
        student_features: Tensor of the same shape.

    Returns:
        A float32 tensor of shape `(batch,)`.
    """
    difference = ops.cast(student_features, "float32") - ops.cast(teacher_features, "float32")
    difference = ops.reshape(difference, (ops.shape(difference)[0], -1))
    return 0.5 * ops.sum(ops.square(difference), axis=-1)


@keras.saving.register_keras_serializable(package="keras_distill")
class HintLoss(FeatureLoss):
    """FitNets' hint loss: `1/2 * ||teacher - student||^2` per example.

    `y_true` is the teacher's hint and `y_pred` the student's guided feature
    mapped to the hint's shape; the squared distance is summed over every
    feature axis and averaged over the batch.

    Args:
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Reference:
        - [Romero et al., 2015](https://arxiv.org/abs/1412.6550)
    """

    def __init__(self, reduction="sum_over_batch_size", name="hint_loss", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        return hint_loss(y_true, y_pred)
