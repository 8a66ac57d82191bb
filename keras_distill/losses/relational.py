"""Relational knowledge distillation (Park et al., 2019): shared pieces."""

from keras import ops

from keras_distill.losses.feature_loss import FeatureLoss

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

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or delta <= 0:
            raise ValueError(
                f"`delta` must be a number > 0. Received: delta={delta!r}. "
                "Use e.g. delta=1.0."
            )
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, delta=self.delta)

    def check_shapes(self, teacher_shape, student_shape):
        # Relations between examples have the batch's shape, whatever the
        # features' widths.
        return None

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}
