"""Distillation from the teacher's top-k tokens only.

A 256k-token vocabulary makes full teacher logits too large to cache; the
teacher's k most likely classes (indices and log-probabilities) are enough
for a loss that keeps the teacher's remaining mass as one extra bucket:

    teacher: p_i = (1 - r) * softmax_over_top_k(l_i / T),  rest r
    student: q_i = softmax(z / T)[index_i],                rest 1 - sum q_i
    loss = T^2 * [sum_i p_i log(p_i / q_i) + r log(r / (1 - sum_i q_i))]

where `l_i` are the teacher's log-probabilities at temperature 1 and
`r = 1 - sum_i exp(l_i)` its mass outside the top k at temperature 1 (the
cache does not know the tail's shape, so the remainder keeps its T = 1
mass at every temperature). With k equal to the vocabulary `r` is 0 and the
loss is the dense soft-target KL divergence exactly; at T = 1 it is the KL
divergence between the two distributions coarsened to k + 1 buckets.
"""

import keras
from keras import ops

from keras_distill.losses.base import check_temperature
from keras_distill.losses.base import soften
from keras_distill.losses.base import temperature_value

# A remainder below this (float32 rounding of a full-vocabulary top-k) is 0.
_REST_FLOOR = 1e-6


def top_k_teacher(teacher_logits, k):
    """The teacher's k most likely classes: `(indices, log_probs)`, each of
    shape `(..., k)`, log-probabilities at temperature 1 (float32)."""
    log_probs = ops.log_softmax(ops.cast(teacher_logits, "float32"), axis=-1)
    values, indices = ops.top_k(log_probs, k)
    return ops.cast(indices, "int32"), values


def top_k_kl_divergence(teacher_indices, teacher_log_probs, student_logits, *, temperature=1.0):
    """T^2 * KL between the teacher's top-k (plus remainder) and the student.

    Args:
        teacher_indices: int tensor `(..., k)`, the teacher's top-k classes.
        teacher_log_probs: tensor `(..., k)`, their log-probabilities at
            temperature 1 (any order; `top_k_teacher` gives them sorted).
        student_logits: tensor `(..., num_classes)`.
        temperature: float (or scalar tensor) > 0.

    Returns:
        A float32 tensor of shape `student_logits.shape[:-1]`.
    """
    temperature = ops.cast(temperature, "float32")
    teacher_log_probs = ops.cast(teacher_log_probs, "float32")
    teacher_indices = ops.cast(teacher_indices, "int32")
    rest = ops.maximum(1.0 - ops.sum(ops.exp(teacher_log_probs), axis=-1), 0.0)
    rest = ops.where(rest < _REST_FLOOR, 0.0, rest)
    top_log_probs = ops.log_softmax(teacher_log_probs / temperature, axis=-1) + ops.expand_dims(
        ops.log(ops.maximum(1.0 - rest, _REST_FLOOR)), -1
    )
    student_log_probs = soften(student_logits, temperature)
    student_top = ops.take_along_axis(student_log_probs, teacher_indices, axis=-1)
    vocabulary = ops.shape(student_log_probs)[-1]
    in_top_k = ops.sum(ops.one_hot(teacher_indices, vocabulary, dtype="float32"), axis=-2)
    student_rest = ops.logsumexp(ops.where(in_top_k > 0, -1e30, student_log_probs), axis=-1)
    top_term = ops.sum(ops.exp(top_log_probs) * (top_log_probs - student_top), axis=-1)
    safe_rest = ops.maximum(rest, _REST_FLOOR)
    rest_term = ops.where(rest > 0, rest * (ops.log(safe_rest) - student_rest), 0.0)
    # T^2 is applied here only: the remainder bucket keeps this loss out of
    # `keras_distill.losses.base.tempered`.
    return ops.square(temperature) * (top_term + rest_term)


def pack_top_k(indices, log_probs):
    """One float32 tensor `(..., 2k)` holding indices then log-probabilities,
    the `y_true` of `TopKKLDivergence` (indices up to 2**24 are exact)."""
    return ops.concatenate([ops.cast(indices, "float32"), ops.cast(log_probs, "float32")], axis=-1)


@keras.saving.register_keras_serializable(package="keras_distill")
class TopKKLDivergence(keras.losses.Loss):
    """`top_k_kl_divergence` as a `keras.losses.Loss`.

    `y_true` is `pack_top_k(teacher_indices, teacher_log_probs)`, `y_pred`
    the student's logits. A `keras_distill.Distiller` uses it by itself
    when the teacher's outputs are top-k (`teacher_top_k=k`, or a cache
    from `precompute_teacher_outputs(..., top_k=k)`).

    Args:
        temperature: float > 0 (or a scalar `keras.Variable`). Defaults to
            1.0.
        reduction: As in `keras.losses.Loss`.
        name: Optional name of the loss.
    """

    def __init__(self, temperature=1.0, reduction="sum_over_batch_size", name="top_k_kl_divergence"):
        super().__init__(name=name, reduction=reduction)
        self.temperature = check_temperature(temperature)

    def call(self, y_true, y_pred):
        k = y_true.shape[-1] // 2
        return top_k_kl_divergence(
            ops.cast(y_true[..., :k], "int32"), y_true[..., k:], y_pred, temperature=self.temperature
        )

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "temperature": temperature_value(self.temperature)}
