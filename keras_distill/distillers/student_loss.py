"""Resolves the hard-label loss of a student that outputs logits."""

import keras

from keras_distill.losses.lookup import FunctionLoss

# Names whose Keras default (from_logits=False) would be wrong on logits.
_FROM_LOGITS_CLASSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}


def resolve_student_loss(loss):
    """Returns a `keras.losses.Loss` for the student's logits, or None.

    A cross-entropy given by name is built with `from_logits=True`, since a
    distiller's student outputs logits; a loss object built with
    `from_logits=False` is refused rather than silently applied to logits.
    """
    if loss is None:
        return None
    if isinstance(loss, str):
        loss_class = _FROM_LOGITS_CLASSES.get(loss.lower())
        if loss_class is not None:
            return loss_class(from_logits=True)
        loss = keras.losses.get(loss)
    if isinstance(loss, dict):
        loss = keras.saving.deserialize_keras_object(loss)
    if isinstance(loss, keras.losses.Loss):
        if getattr(loss, "from_logits", None) is False:
            raise ValueError(
                f"The student loss {type(loss).__name__} was built with "
                "from_logits=False, so it expects probabilities, but the "
                "student outputs logits. Received: loss="
                f"{type(loss).__name__}(from_logits=False). Use "
                f"keras.losses.{type(loss).__name__}(from_logits=True)."
            )
        return loss
    if callable(loss):
        return FunctionLoss(loss)
    raise TypeError(
        "`loss` must be a keras.losses.Loss, a loss name or a function. "
        f"Received: loss={loss!r} (of type {type(loss).__name__}). Use e.g. "
        "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
    )
