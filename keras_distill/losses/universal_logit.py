"""Universal Logit Distillation (Boizard et al., 2024): distillation between
models with different vocabularies."""

import keras
from keras import ops

from keras_distill.losses.base import LogitLoss
from keras_distill.losses.base import soften


def _sorted_probabilities(logits, temperature, size):
    """Probabilities of `logits / T`, sorted in decreasing order along the
    last axis and padded with zeros to `size` entries."""
    probabilities = ops.exp(soften(logits, temperature))
    probabilities = ops.flip(ops.sort(probabilities, axis=-1), axis=-1)
    padding = size - probabilities.shape[-1]
    if padding:
        pad = [[0, 0]] * (len(probabilities.shape) - 1) + [[0, padding]]
        probabilities = ops.pad(probabilities, pad)
    return probabilities


def _aligned(teacher_logits, student_logits):
    """Both truncated to the shorter sequence (axis 1) when they are
    sequences of different lengths: tokens are aligned by position."""
    if len(teacher_logits.shape) >= 3 and teacher_logits.shape[1] != student_logits.shape[1]:
        length = min(teacher_logits.shape[1], student_logits.shape[1])
        teacher_logits, student_logits = teacher_logits[:, :length], student_logits[:, :length]
    return teacher_logits, student_logits


def _per_example(teacher_logits, student_logits, temperature):
    teacher_logits, student_logits = _aligned(teacher_logits, student_logits)
    size = max(teacher_logits.shape[-1], student_logits.shape[-1])
    teacher = _sorted_probabilities(teacher_logits, temperature, size)
    student = _sorted_probabilities(student_logits, temperature, size)
    return ops.sum(ops.abs(teacher - student), axis=-1)


def universal_logit_distillation(teacher_logits, student_logits, temperature=1.0):
    """The Universal Logit Distillation loss: a Wasserstein-1 distance between
    the teacher's and the student's probability vectors, each sorted in
    decreasing order, so that it needs no mapping between the two
    vocabularies:

        ULD = mean over examples (tokens) of sum_i |sort(p_s)_i - sort(p_t)_i|

    with `p = softmax(z / T)`; the smaller vocabulary's vector is padded with
    zeros to the larger's size. Sequences of different lengths are aligned
    by position, truncated to the shorter one. No T^2 factor (as in the
    authors' code).

    Args:
        teacher_logits: Tensor `(batch, ..., teacher_vocabulary)`.
        student_logits: Tensor `(batch, ..., student_vocabulary)`.
        temperature: float > 0. Defaults to 1.0.

    Returns:
        A float32 scalar.

    Reference:
        - [Boizard et al., 2024](https://arxiv.org/abs/2402.12030)
    """
    return ops.mean(_per_example(teacher_logits, student_logits, temperature))


@keras.saving.register_keras_serializable(package="keras_distill")
class UniversalLogitDistillation(LogitLoss):
    """Universal Logit Distillation as a `keras.losses.Loss`: `y_true` is the
    teacher's logits, `y_pred` the student's, their vocabularies may differ.
    See `keras_distill.losses.universal_logit_distillation`. Per-token values
    have the student's sequence length (0 past the teacher's), so the
    student's `sample_weight` applies; distill a teacher with its own
    tokenizer with `keras_distill.Distiller(student=student, teacher=teacher,
    separate_teacher_inputs=True)`.

    Args:
        temperature: float > 0 (or a scalar `keras.Variable`). Defaults to
            1.0.
        reduction: As in `keras.losses.Loss`.
        name: Optional name.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Reference:
        - [Boizard et al., 2024](https://arxiv.org/abs/2402.12030)
    """

    uses_temperature = True
    accepts_other_vocabularies = True

    def __init__(
        self, temperature=1.0, reduction="sum_over_batch_size", name="universal_logit_distillation", dtype=None
    ):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        values = _per_example(y_true, y_pred, self.temperature)
        # One value per student token, so that the student's per-token
        # weights apply: positions past the teacher's sequence have no
        # teacher distribution and contribute 0.
        missing = (y_pred.shape[1] - values.shape[1]) if len(y_pred.shape) >= 3 else 0
        if missing:
            values = ops.pad(values, [[0, 0], [0, missing]] + [[0, 0]] * (len(values.shape) - 2))
        return values
