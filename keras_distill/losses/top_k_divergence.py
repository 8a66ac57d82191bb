"""Distillation from the teacher's top-k tokens only.

A 256k-token vocabulary makes full teacher logits too large to cache; the
teacher's k most likely classes (indices and log-probabilities) are enough
for losses over k + 1 buckets, the teacher's remaining mass as the last:

    teacher: p_i = (1 - r) * softmax_over_top_k(l_i / T),  rest r
    student: q_i = softmax(z / T)[index_i],                rest 1 - sum q_i
    forward KL  = T^2 * sum_b p_b log(p_b / q_b)
    reverse KL  = T^2 * sum_b q_b log(q_b / p_b)
    JSD(beta)   = T^2 * [beta KL(p || m) + (1 - beta) KL(q || m)],  m = beta p + (1 - beta) q

where `l_i` are the teacher's log-probabilities at temperature 1 and
`r = 1 - sum_i exp(l_i)` its mass outside the top k at temperature 1 (the
cache does not know the tail's shape, so the remainder keeps its T = 1
mass at every temperature). With k equal to the vocabulary `r` is 0 and the
loss is the dense soft-target KL divergence exactly; at T = 1 it is the KL
divergence between the two distributions coarsened to k + 1 buckets,
TRL's top-k-plus-tail formula (`trl/experimental/iw_opd`: `_add_tail_bucket`
then `_jsd_divergence`, its beta 0 forward and 1 reverse KL), which takes a
tail of at least exp(-1e-7)'s complement where this takes 0 below 1e-6.
"""

import math

import keras
from keras import ops

from keras_distill._validate import check_choice
from keras_distill._validate import check_number
from keras_distill.losses.base import check_temperature
from keras_distill.losses.base import soften
from keras_distill.losses.base import temperature_value
from keras_distill.losses.divergences import GeneralizedJSD
from keras_distill.losses.divergences import SoftTargetReverseKL
from keras_distill.losses.soft_targets import SoftTargetKLDivergence

# A remainder below this (float32 rounding of a full-vocabulary top-k) is 0.
_REST_FLOOR = 1e-6


def top_k_teacher(teacher_logits, k):
    """The teacher's k most likely classes: `(indices, log_probs)`, each of
    shape `(..., k)`, log-probabilities at temperature 1 (float32)."""
    log_probs = ops.log_softmax(ops.cast(teacher_logits, "float32"), axis=-1)
    values, indices = ops.top_k(log_probs, k)
    return ops.cast(indices, "int32"), values


DIVERGENCES = ("kl", "reverse_kl", "jsd")


def top_k_buckets(teacher_indices, teacher_log_probs, student_logits, *, temperature=1.0):
    """The two distributions over the teacher's top k classes plus one
    bucket for the rest, as log-probabilities `(..., k + 1)` (float32): the
    teacher's from its top-k log-probabilities at temperature 1, the
    student's from its logits, both at `temperature`. A rest of 0 (the whole
    vocabulary kept) is -inf."""
    temperature = ops.cast(temperature, "float32")
    teacher_log_probs = ops.cast(teacher_log_probs, "float32")
    teacher_indices = ops.cast(teacher_indices, "int32")
    # The rest as log(1 - exp(logsumexp)): 1 - sum in float32 loses a small
    # rest to cancellation, and the reverse KL reads its logarithm.
    log_kept = ops.minimum(ops.logsumexp(teacher_log_probs, axis=-1, keepdims=True), 0.0)
    rest = -ops.expm1(log_kept)
    kept = rest >= _REST_FLOOR
    teacher_top = ops.log_softmax(teacher_log_probs / temperature, axis=-1) + ops.where(kept, log_kept, 0.0)
    teacher_rest = ops.where(kept, ops.log(ops.maximum(rest, _REST_FLOOR)), -float("inf"))
    student_log_probs = soften(student_logits, temperature)
    student_top = ops.take_along_axis(student_log_probs, teacher_indices, axis=-1)
    vocabulary = ops.shape(student_log_probs)[-1]
    in_top_k = ops.sum(ops.one_hot(teacher_indices, vocabulary, dtype="float32"), axis=-2)
    student_rest = ops.logsumexp(ops.where(in_top_k > 0, -float("inf"), student_log_probs), axis=-1, keepdims=True)
    teacher = ops.concatenate([teacher_top, teacher_rest], axis=-1)
    return teacher, ops.concatenate([student_top, student_rest], axis=-1)


def _kl(log_p, log_q):
    """`KL(p || q)` over the last axis; a bucket where p is 0 adds 0."""
    p = ops.exp(log_p)
    return ops.sum(ops.where(p > 0, p * (log_p - ops.maximum(log_q, -1e30)), 0.0), axis=-1)


def top_k_divergence(teacher_indices, teacher_log_probs, student_logits, *, divergence="kl", beta=0.5, temperature=1.0):
    """T^2 times a divergence between the teacher's top-k (plus rest) and
    the student, over the k + 1 buckets of `top_k_buckets`.

    Args:
        teacher_indices: int tensor `(..., k)`, the teacher's top-k classes.
        teacher_log_probs: tensor `(..., k)`, their log-probabilities at
            temperature 1 (any order; `top_k_teacher` gives them sorted).
        student_logits: tensor `(..., num_classes)`.
        divergence: `"kl"` (forward, `KL(teacher || student)`),
            `"reverse_kl"` (`KL(student || teacher)`) or `"jsd"` (the
            generalized Jensen-Shannon divergence of GKD, with `beta`).
        beta: float strictly between 0 and 1, for `"jsd"`.
        temperature: float (or scalar tensor) > 0.

    Returns:
        A float32 tensor of shape `student_logits.shape[:-1]`. With k equal
        to the vocabulary, the dense divergence exactly.
    """
    teacher, student = top_k_buckets(teacher_indices, teacher_log_probs, student_logits, temperature=temperature)
    if divergence == "kl":
        value = _kl(teacher, student)
    elif divergence == "reverse_kl":
        value = _kl(student, teacher)
    else:
        mixture = ops.logsumexp(ops.stack([teacher + math.log(beta), student + math.log(1.0 - beta)], axis=0), axis=0)
        value = beta * _kl(teacher, mixture) + (1.0 - beta) * _kl(student, mixture)
    # T^2 is applied here: the rest bucket keeps these losses out of
    # `keras_distill.losses.base.tempered`.
    return ops.square(ops.cast(temperature, "float32")) * value


def top_k_kl_divergence(teacher_indices, teacher_log_probs, student_logits, *, temperature=1.0):
    """T^2 * KL between the teacher's top-k (plus remainder) and the student:
    `top_k_divergence(..., divergence="kl")`.

    Returns:
        A float32 tensor of shape `student_logits.shape[:-1]`.
    """
    return top_k_divergence(teacher_indices, teacher_log_probs, student_logits, temperature=temperature)


def pack_top_k(indices, log_probs):
    """One float32 tensor `(..., 2k)` holding indices then log-probabilities,
    the `y_true` of `TopKKLDivergence` (indices up to 2**24 are exact)."""
    return ops.concatenate([ops.cast(indices, "float32"), ops.cast(log_probs, "float32")], axis=-1)


@keras.saving.register_keras_serializable(package="keras_distill")
class TopKDivergence(keras.losses.Loss):
    """`top_k_divergence` as a `keras.losses.Loss`.

    `y_true` is `pack_top_k(teacher_indices, teacher_log_probs)`, `y_pred`
    the student's logits. A `keras_distill.Distiller` builds it by itself
    when the teacher's outputs are top-k (`teacher_top_k=k`, or a cache
    from `precompute_teacher_outputs(..., top_k=k)`), for the compiled
    `"kl"`, `"reverse_kl"` or `"jsd"` (`top_k_counterpart`).

    Args:
        divergence: `"kl"`, `"reverse_kl"` or `"jsd"`.
        beta: float strictly between 0 and 1, for `"jsd"`. Defaults to 0.5.
        temperature: float > 0 (or a scalar `keras.Variable`). Defaults to
            1.0.
        reduction: As in `keras.losses.Loss`.
        name: Optional name of the loss.
        dtype: The dtype of the loss's computations. Defaults to float32
            whatever floatx is: the packed token ids must stay exact.
    """

    def __init__(
        self,
        divergence="kl",
        beta=0.5,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="top_k_divergence",
        dtype=None,
    ):
        # float32, not floatx: Keras casts `y_true` to it, and token ids above
        # 2048 are not exact in float16.
        super().__init__(name=name, reduction=reduction, dtype=dtype or "float32")
        self.divergence = check_choice(divergence, "divergence", DIVERGENCES)
        self.beta = check_number(beta, "beta", example=0.5, above=0.0, below=1.0)
        self.temperature = check_temperature(temperature)

    def call(self, y_true, y_pred):
        k = y_true.shape[-1] // 2
        return top_k_divergence(
            ops.cast(y_true[..., :k], "int32"),
            y_true[..., k:],
            y_pred,
            divergence=self.divergence,
            beta=self.beta,
            temperature=self.temperature,
        )

    def get_config(self):
        return {
            "name": self.name,
            "reduction": self.reduction,
            "divergence": self.divergence,
            "beta": self.beta,
            "temperature": temperature_value(self.temperature),
        }


@keras.saving.register_keras_serializable(package="keras_distill")
class TopKKLDivergence(TopKDivergence):
    """`top_k_kl_divergence` as a `keras.losses.Loss`: `TopKDivergence` with
    the forward KL divergence.

    Args:
        temperature: float > 0 (or a scalar `keras.Variable`). Defaults to
            1.0.
        reduction: As in `keras.losses.Loss`.
        name: Optional name of the loss.
        dtype: The dtype of the loss's computations. Defaults to float32
            whatever floatx is: the packed token ids must stay exact.
    """

    def __init__(
        self, temperature=1.0, reduction="sum_over_batch_size", name="top_k_kl_divergence", dtype=None, **kwargs
    ):
        # A `TopKDivergence("kl")` config carries a divergence and a beta.
        divergence = kwargs.pop("divergence", "kl")
        kwargs.pop("beta", None)
        if kwargs:
            raise TypeError(
                f"TopKKLDivergence got unexpected arguments {sorted(kwargs)}. It takes temperature, reduction, "
                "name and dtype; for another divergence use keras_distill.losses.TopKDivergence."
            )
        check_choice(divergence, "divergence", ("kl",), note="Use keras_distill.losses.TopKDivergence for the others.")
        super().__init__("kl", temperature=temperature, reduction=reduction, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "temperature": temperature_value(self.temperature)}


def top_k_counterpart(loss):
    """The `TopKDivergence` computing what the compiled distillation loss
    `loss` computes, on top-k teacher outputs (its temperature, a variable
    of the distiller's, shared), or None for a loss that needs every logit."""
    if isinstance(loss, GeneralizedJSD):
        return TopKDivergence("jsd", beta=loss.beta, temperature=loss.temperature)
    if isinstance(loss, SoftTargetReverseKL):
        return TopKDivergence("reverse_kl", temperature=loss.temperature)
    if type(loss) is SoftTargetKLDivergence:
        return TopKDivergence("kl", temperature=loss.temperature)
    return None
