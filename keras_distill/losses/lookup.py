"""Names of the losses: the `distillation_loss` and `feature_loss` arguments."""

import re

import keras

from keras_distill.losses.attention_transfer import AttentionTransfer
from keras_distill.losses.cosine_distance import CosineDistance
from keras_distill.losses.decoupled_kd import DecoupledKD
from keras_distill.losses.dist import DIST
from keras_distill.losses.divergences import GeneralizedJSD
from keras_distill.losses.divergences import SoftTargetReverseKL
from keras_distill.losses.fsp import FSPLoss
from keras_distill.losses.hint import HintLoss
from keras_distill.losses.logit_matching import LogitMatching
from keras_distill.losses.relational import RKDAngle
from keras_distill.losses.relational import RKDDistance
from keras_distill.losses.soft_targets import SoftTargetCrossEntropy
from keras_distill.losses.soft_targets import SoftTargetKLDivergence
from keras_distill.losses.universal_logit import UniversalLogitDistillation

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
    "logit_matching": LogitMatching,
    "dkd": DecoupledKD,
    "decoupled_kd": DecoupledKD,
    "dist": DIST,
    "uld": UniversalLogitDistillation,
}

FEATURE_ALIASES = {
    "hint": HintLoss,
    "fsp": FSPLoss,
    "attention_transfer": AttentionTransfer,
    "at": AttentionTransfer,
    "rkd_distance": RKDDistance,
    "rkd_angle": RKDAngle,
    "mse": keras.losses.MeanSquaredError,
    "cosine_similarity": keras.losses.CosineSimilarity,
    "cosine_distance": CosineDistance,
    "cosine": CosineDistance,
}


def get(identifier):
    """Returns the loss object named by `identifier`.

    Args:
        identifier: a name from `ALIASES` (case-insensitive), a
            `keras_distill.losses.LogitLoss`, any `keras.losses.Loss`
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
                + (
                    " For Ba & Caruana's mean squared error between the models' "
                    "logits, use distillation_loss='logit_matching'."
                    if identifier.lower() == "mse"
                    else ""
                )
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


def scope_name(name, default):
    """`name` as a valid TensorFlow name scope: a lambda's `<lambda>` (or a
    leading underscore) would make TensorFlow refuse the scope, and leave
    its scope stack broken for every later fit in the process."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name)).strip("_.-")
    return name or default


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
        name = name or scope_name(getattr(fn, "__name__", ""), "function_loss")
        super().__init__(name=name, reduction=reduction)
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def get_config(self):
        return {
            **super().get_config(),
            "fn": keras.saving.serialize_keras_object(self.fn),
        }


def get_feature_loss(identifier):
    """A `keras.losses.Loss` from a name in `FEATURE_ALIASES`, a loss
    instance or a serialized loss."""
    if isinstance(identifier, keras.losses.Loss):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str) and identifier.lower() in FEATURE_ALIASES:
        return FEATURE_ALIASES[identifier.lower()]()
    raise ValueError(
        f"Unknown `feature_loss`. Received: feature_loss={identifier!r}. "
        f"Expected one of {sorted(FEATURE_ALIASES)} or a keras.losses.Loss "
        "instance taking (teacher_features, student_features), e.g. "
        "keras_distill.losses.AttentionTransfer()."
    )
