"""Resolves the `distillation_loss` argument of the distillers."""

import keras

from keras_distill.losses.distillation_loss import DistillationLoss
from keras_distill.losses.divergences import GeneralizedJSD
from keras_distill.losses.divergences import SoftTargetReverseKL
from keras_distill.losses.logit_matching import LogitMatching
from keras_distill.losses.soft_targets import SoftTargetCrossEntropy
from keras_distill.losses.soft_targets import SoftTargetKLDivergence

ALIASES = {
    "kl": SoftTargetKLDivergence,
    "kld": SoftTargetKLDivergence,
    "kl_divergence": SoftTargetKLDivergence,
    "soft_target_kl_divergence": SoftTargetKLDivergence,
    "cross_entropy": SoftTargetCrossEntropy,
    "ce": SoftTargetCrossEntropy,
    "soft_target_cross_entropy": SoftTargetCrossEntropy,
    "reverse_kl": SoftTargetReverseKL,
    "soft_target_reverse_kl": SoftTargetReverseKL,
    "jsd": GeneralizedJSD,
    "generalized_jsd": GeneralizedJSD,
    "mse": LogitMatching,
    "logit_matching": LogitMatching,
}


def get(identifier):
    """Returns the loss object named by `identifier`.

    Args:
        identifier: a name from `ALIASES` (case-insensitive), a
            `keras_distill.losses.DistillationLoss`, any `keras.losses.Loss`
            instance, or a serialized loss config (a dict).

    Returns:
        A `keras.losses.Loss` instance.
    """
    if isinstance(identifier, keras.losses.Loss):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        loss_class = ALIASES.get(identifier.lower())
        if loss_class is None:
            raise ValueError(
                f"Unknown `distillation_loss` name. Received: "
                f"distillation_loss={identifier!r}. Expected one of "
                f"{sorted(ALIASES)}, a keras_distill.losses object or a "
                "keras.losses.Loss instance such as keras.losses.KLDivergence()."
            )
        return loss_class()
    if callable(identifier):
        return FunctionLoss(identifier)
    raise TypeError(
        "`distillation_loss` must be a name, a keras.losses.Loss or a "
        f"function. Received: distillation_loss={identifier!r} "
        f"(of type {type(identifier).__name__}). Use e.g. "
        'distillation_loss="kl".'
    )


@keras.saving.register_keras_serializable(package="keras_distill")
class FunctionLoss(keras.losses.Loss):
    """Wraps a loss function `fn(y_true, y_pred)` as a `keras.losses.Loss`.

    Args:
        fn: a function returning per-example losses. A registered Keras
            function serializes by name.
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None):
        if isinstance(fn, (str, dict)):
            fn = keras.losses.get(fn)
        super().__init__(
            name=name or getattr(fn, "__name__", "function_loss"),
            reduction=reduction,
        )
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def get_config(self):
        return {
            **super().get_config(),
            "fn": keras.saving.serialize_keras_object(self.fn),
        }


def is_logit_loss(loss):
    """Whether `loss` takes logits (a keras_distill loss) or probabilities."""
    return isinstance(loss, DistillationLoss)
