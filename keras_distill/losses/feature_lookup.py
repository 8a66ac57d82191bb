"""Resolves the `feature_loss` argument of the feature distillers."""

import keras

from keras_distill.losses.attention_transfer import AttentionTransfer
from keras_distill.losses.cosine_distance import CosineDistance
from keras_distill.losses.fsp import FSPLoss
from keras_distill.losses.hint import HintLoss
from keras_distill.losses.rkd_angle import RKDAngle
from keras_distill.losses.rkd_distance import RKDDistance

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
