"""Soft-target losses of Hinton et al. (2015): KL divergence and cross-entropy
between temperature-softened teacher and student distributions."""

import keras
from keras import ops

from keras_distill.losses.base import LogitLoss
from keras_distill.losses.base import kl_from_log_probs
from keras_distill.losses.base import tempered


def soft_target_kl_divergence(teacher_logits, student_logits, *, temperature=1.0):
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)) per example.

    Computed from float32 log-softmax, so it is finite and non-negative for
    float16 / bfloat16 inputs, and unchanged when a constant is added to
    either model's logits.

    Args:
        teacher_logits: Tensor of shape `(..., num_classes)`.
        student_logits: Tensor of the same shape.
        temperature: float (or scalar tensor) > 0.

    Returns:
        A float32 tensor of shape `teacher_logits.shape[:-1]`.
    """
    return tempered(kl_from_log_probs, teacher_logits, student_logits, temperature, "soft_target_kl_divergence")


def soft_target_cross_entropy(teacher_logits, student_logits, *, temperature=1.0):
    """T^2 * H(softmax(teacher / T), softmax(student / T)) per example.

    Equals `soft_target_kl_divergence` plus T^2 times the teacher's entropy,
    a constant for the student: same gradients, different value.

    Args:
        teacher_logits: Tensor of shape `(..., num_classes)`.
        student_logits: Tensor of the same shape.
        temperature: float (or scalar tensor) > 0.

    Returns:
        A float32 tensor of shape `teacher_logits.shape[:-1]`.
    """
    return tempered(_cross_entropy, teacher_logits, student_logits, temperature, "soft_target_cross_entropy")


def _cross_entropy(teacher_log_probs, student_log_probs):
    return -ops.sum(ops.exp(teacher_log_probs) * student_log_probs, axis=-1)


class _SoftTargetLoss(LogitLoss):
    """A `LogitLoss` computed by a per-example function of
    `(teacher_logits, student_logits, temperature)`."""

    uses_temperature = True
    function = None

    def __init__(
        self,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
    ):
        super().__init__(
            temperature=temperature,
            reduction=reduction,
            name=name or self.function.__name__,
            dtype=dtype,
        )

    def call(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, temperature=self.temperature)


@keras.saving.register_keras_serializable(package="keras_distill")
class SoftTargetKLDivergence(_SoftTargetLoss):
    """Soft-target KL divergence of Hinton et al., with the T^2 factor.

    `loss = T^2 * KL(softmax(y_true / T) || softmax(y_pred / T))`, where
    `y_true` is the teacher's logits and `y_pred` the student's logits. The
    T^2 factor keeps the gradient's scale independent of the temperature, so
    the loss can be mixed with a hard-label loss at any temperature.

    Args:
        temperature: float > 0 (or a scalar `keras.Variable`). Softmax
            temperature. Defaults to `1.0`.
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance. Defaults to
            `"soft_target_kl_divergence"`.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Examples:

    >>> teacher_logits = [[2.0, 1.0, 0.1]]
    >>> student_logits = [[1.0, 1.0, 1.0]]
    >>> loss = keras_distill.losses.SoftTargetKLDivergence(temperature=2.0)
    >>> loss(teacher_logits, student_logits)

    Reference:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
    """

    function = staticmethod(soft_target_kl_divergence)


@keras.saving.register_keras_serializable(package="keras_distill")
class SoftTargetCrossEntropy(_SoftTargetLoss):
    """Soft-target cross-entropy of Hinton et al., with the T^2 factor.

    `loss = -T^2 * sum(softmax(y_true / T) * log_softmax(y_pred / T))`, where
    `y_true` is the teacher's logits and `y_pred` the student's logits. It
    has the gradients of `SoftTargetKLDivergence`; its value is larger by
    T^2 times the teacher's entropy, so it is not zero when the student
    matches the teacher.

    Args:
        temperature: float > 0 (or a scalar `keras.Variable`). Softmax
            temperature. Defaults to `1.0`.
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance. Defaults to
            `"soft_target_cross_entropy"`.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Examples:

    >>> loss = keras_distill.losses.SoftTargetCrossEntropy(temperature=4.0)
    >>> loss([[2.0, 1.0, 0.1]], [[1.0, 1.0, 1.0]])

    Reference:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
    """

    function = staticmethod(soft_target_cross_entropy)


@keras.saving.register_keras_serializable(package="keras_distill")
class SoftenedLoss(LogitLoss):
    """Any `keras.losses.Loss` applied to temperature-softened probabilities.

    `loss = T^2 * inner(softmax(y_true / T), softmax(y_pred / T))`, where
    `y_true` is the teacher's logits and `y_pred` the student's: the
    keras.io tutorial's `distillation_loss_fn=keras.losses.KLDivergence()`.
    A distiller wraps a `distillation_loss` that is not a
    `keras_distill.losses.LogitLoss` in it. The inner loss's
    reduction is used; its per-example values come from its `call`.

    Args:
        loss: A `keras.losses.Loss` taking probabilities, e.g.
            `keras.losses.KLDivergence()`.
        temperature: float > 0 (or a scalar `keras.Variable`). Defaults to
            1.0.
        name: Optional name. Defaults to the inner loss's.
    """

    uses_temperature = True

    def __init__(self, loss, temperature=1.0, name=None):
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        super().__init__(temperature=temperature, reduction=loss.reduction, name=name or loss.name)
        self.loss = loss

    def call(self, y_true, y_pred):
        def divergence(teacher_log_probs, student_log_probs):
            values = self.loss.call(ops.exp(teacher_log_probs), ops.exp(student_log_probs))
            return ops.cast(values, "float32")

        return tempered(divergence, y_true, y_pred, self.temperature, type(self).__name__)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        return {**config, "loss": keras.saving.serialize_keras_object(self.loss)}
