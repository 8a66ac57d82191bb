"""Decoupled knowledge distillation (Zhao et al., CVPR 2022)."""

import keras
from keras import ops

from keras_distill._validate import check_number
from keras_distill.losses.base import LogitLoss
from keras_distill.losses.base import tempered

# Where -inf would do: a log-probability no class reaches in float32.
_NEGATIVE = -1e30


def _target_classes(labels, teacher_log_probs):
    """Integer target classes of shape `teacher_log_probs.shape[:-1]`.

    `labels` are class indices (any shape that squeezes to it) or one-hot /
    soft labels over the last axis. An index outside `[0, classes)`, such as
    the `-1` of `ignore_class` for unlabeled examples, is replaced by the
    teacher's most likely class: the decoupling needs a target class, and the
    teacher's is the best one known.
    """
    classes = teacher_log_probs.shape[-1]
    labels = ops.convert_to_tensor(labels)
    rank = len(teacher_log_probs.shape)
    if len(labels.shape) == rank and labels.shape[-1] == classes and classes != 1:
        labels = ops.argmax(labels, axis=-1)
    elif len(labels.shape) == rank and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    labels = ops.cast(labels, "int32")
    teacher_choice = ops.cast(ops.argmax(teacher_log_probs, axis=-1), "int32")
    known = ops.logical_and(labels >= 0, labels < classes)
    return ops.where(known, labels, teacher_choice)


def _decoupled_divergences(teacher_log_probs, student_log_probs, labels):
    """`(TCKD, NCKD)` per example, from log-probabilities at one temperature."""
    target = ops.one_hot(_target_classes(labels, teacher_log_probs), teacher_log_probs.shape[-1], dtype="float32")
    is_target = target > 0

    def binary_and_rest(log_probs):
        log_target = ops.sum(log_probs * target, axis=-1)
        log_rest = ops.logsumexp(ops.where(is_target, _NEGATIVE, log_probs), axis=-1)
        # The non-target classes renormalized among themselves.
        log_non_target = ops.where(is_target, 0.0, log_probs - ops.expand_dims(log_rest, -1))
        return log_target, log_rest, log_non_target

    teacher_target, teacher_rest, teacher_non_target = binary_and_rest(teacher_log_probs)
    student_target, student_rest, student_non_target = binary_and_rest(student_log_probs)
    target_kd = ops.exp(teacher_target) * (teacher_target - student_target) + ops.exp(teacher_rest) * (
        teacher_rest - student_rest
    )
    non_target_probs = ops.where(is_target, 0.0, ops.exp(teacher_non_target))
    non_target_kd = ops.sum(non_target_probs * (teacher_non_target - student_non_target), axis=-1)
    return target_kd, non_target_kd


def decoupled_kd_per_example(teacher_logits, student_logits, labels, *, alpha=1.0, beta=8.0, temperature=4.0):
    """`alpha * TCKD + beta * NCKD`, times T^2, per example.

    Returns:
        A float32 tensor of shape `teacher_logits.shape[:-1]`.
    """

    def divergence(teacher_log_probs, student_log_probs):
        target_kd, non_target_kd = _decoupled_divergences(teacher_log_probs, student_log_probs, labels)
        return alpha * target_kd + beta * non_target_kd

    return tempered(divergence, teacher_logits, student_logits, temperature, "decoupled_kd")


def decoupled_kd(teacher_logits, student_logits, labels, *, alpha=1.0, beta=8.0, temperature=4.0):
    """Decoupled KD: target-class and non-target-class KD, weighted apart.

    With `p = softmax(z / T)`, `b = [p_target, 1 - p_target]` the binary
    target / rest distribution and `p_hat` the distribution over the
    non-target classes renormalized among themselves:

        DKD = T^2 * (alpha * KL(b_teacher || b_student)
                     + beta * KL(p_hat_teacher || p_hat_student))

    Classic KD is `TCKD + (1 - p_target_teacher) * NCKD`: the NCKD term is
    suppressed exactly where the teacher is confident, and DKD frees it.
    Computed in float32 log-space (the authors' code takes the log of
    probabilities, which saturates).

    Args:
        teacher_logits: Tensor `(..., num_classes)`.
        student_logits: Tensor of the same shape.
        labels: Class indices `(...)` (or `(..., 1)`), or one-hot labels
            `(..., num_classes)`. Indices outside `[0, num_classes)`, e.g.
            the `-1` of unlabeled examples, take the teacher's top class.
        alpha: Weight of the target-class term (TCKD). Defaults to 1.0.
        beta: Weight of the non-target-class term (NCKD). Defaults to 8.0.
        temperature: float > 0. Defaults to 4.0.

    Returns:
        A float32 scalar: the mean over every example (and position).

    Reference:
        - [Zhao et al., 2022](https://arxiv.org/abs/2203.08679)
    """
    return ops.mean(
        decoupled_kd_per_example(
            teacher_logits, student_logits, labels, alpha=alpha, beta=beta, temperature=temperature
        )
    )


@keras.saving.register_keras_serializable(package="keras_distill")
class DecoupledKD(LogitLoss):
    """Decoupled knowledge distillation (DKD) as a `keras.losses.Loss`.

    `y_true` is `(teacher_logits, labels)`, `y_pred` the student's logits;
    a distiller compiled with `distillation_loss="dkd"` passes the labels
    itself. See `keras_distill.losses.decoupled_kd`. The authors warm the
    loss up linearly over the first 20 of 240 epochs: with a distiller, use
    `keras_distill.callbacks.AlphaScheduler(keras_distill.callbacks.linear_warmup(...))`.

    Args:
        alpha: Weight of the target-class term. Defaults to 1.0.
        beta: Weight of the non-target-class term. Defaults to 8.0.
        temperature: float > 0 (or a scalar `keras.Variable`). Defaults
            to 4.0.
        reduction: As in `keras.losses.Loss`.
        name: Optional name.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Examples:

    ```python
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      distillation_loss=keras_distill.losses.DecoupledKD(beta=8.0))
    ```

    Reference:
        - [Zhao et al., 2022](https://arxiv.org/abs/2203.08679)
    """

    uses_temperature = True
    needs_labels = True

    def __init__(
        self, alpha=1.0, beta=8.0, temperature=4.0, reduction="sum_over_batch_size", name="decoupled_kd", dtype=None
    ):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)
        self.alpha = check_number(alpha, "alpha", example=1.0, at_least=0.0)
        self.beta = check_number(beta, "beta", example=8.0, at_least=0.0)

    def call(self, y_true, y_pred):
        if not isinstance(y_true, (tuple, list)) or len(y_true) != 2:
            raise ValueError(
                "DecoupledKD separates the target class from the others, so it needs the labels: call it as "
                "loss((teacher_logits, labels), student_logits). Received y_true of shape "
                f"{getattr(y_true, 'shape', None)}. A distiller compiled with distillation_loss='dkd' passes them."
            )
        teacher_logits, labels = y_true
        return decoupled_kd_per_example(
            teacher_logits, y_pred, labels, alpha=self.alpha, beta=self.beta, temperature=self.temperature
        )

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
