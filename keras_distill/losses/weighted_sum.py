"""Several distillation losses on one output, each with its weight."""

import keras
from keras import ops

from keras_distill.losses.base import LogitLoss


@keras.saving.register_keras_serializable(package="keras_distill")
class WeightedSum(LogitLoss):
    """`sum_i weights[i] * losses[i](teacher_logits, student_logits)`.

    What a distiller builds from `compile(distillation_loss=[loss_a,
    loss_b], distillation_loss_weights=[w_a, w_b])`: e.g. soft targets at
    two temperatures, or the KL divergence plus logit matching. Each loss
    gives its per-example values (its `call`) and the sum is reduced once,
    with the sample weights, by this loss's `reduction`. A loss that needs
    the labels (`keras_distill.losses.DecoupledKD`) receives them; the others
    receive the teacher's logits alone.

    Args:
        losses: list of `keras_distill.losses.LogitLoss` objects (a distiller
            has already turned names and Keras losses into them).
        weights: list of floats >= 0, one per loss. Defaults to 1 each.
        reduction: As in `keras.losses.Loss`.
        name: Optional name for the loss instance.

    Examples:

    ```python
    loss = keras_distill.losses.WeightedSum(
        [
            keras_distill.losses.SoftTargetKLDivergence(temperature=1.0),
            keras_distill.losses.SoftTargetKLDivergence(temperature=4.0),
        ],
        weights=[0.7, 0.3],
    )
    ```
    """

    def __init__(self, losses, weights=None, reduction="sum_over_batch_size", name="weighted_sum"):
        super().__init__(reduction=reduction, name=name)
        losses = [keras.saving.deserialize_keras_object(loss) if isinstance(loss, dict) else loss for loss in losses]
        for index, loss in enumerate(losses):
            if not isinstance(loss, keras.losses.Loss):
                raise TypeError(
                    f"WeightedSum takes keras.losses.Loss objects. Received: losses[{index}]={loss!r} "
                    f"(of type {type(loss).__name__}). Pass e.g. keras_distill.losses.SoftTargetKLDivergence()."
                )
        self.losses = list(losses)
        self.weights = [1.0] * len(losses) if weights is None else [float(weight) for weight in weights]
        self.needs_labels = any(getattr(loss, "needs_labels", False) for loss in self.losses)

    def call(self, y_true, y_pred):
        teacher = y_true[0] if self.needs_labels else y_true
        total = None
        for loss, weight in zip(self.losses, self.weights):
            target = y_true if getattr(loss, "needs_labels", False) else teacher
            value = ops.cast(loss.call(target, y_pred), "float32") * weight
            total = value if total is None else total + value
        return total

    def get_config(self):
        return {
            **super().get_config(),
            "losses": [keras.saving.serialize_keras_object(loss) for loss in self.losses],
            "weights": self.weights,
        }
