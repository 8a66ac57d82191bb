"""DIST: distillation from a stronger teacher (Huang et al., NeurIPS 2022)."""

import keras
from keras import ops

from keras_distill._validate import check_number
from keras_distill.losses.base import LogitLoss
from keras_distill.losses.base import check_logit_shapes
from keras_distill.losses.base import soften

# The authors' floor in the cosine similarity.
_EPSILON = 1e-8
_FLOOR = 1e-30


def _pearson(a, b, axis):
    """Pearson correlation of `a` and `b` along `axis`.

    Values without spread (one example, or constant probabilities) have
    norm 0: the floor keeps sqrt's gradient finite there."""
    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    norm_a = ops.sqrt(ops.maximum(ops.sum(ops.square(a), axis=axis), _FLOOR))
    norm_b = ops.sqrt(ops.maximum(ops.sum(ops.square(b), axis=axis), _FLOOR))
    return ops.sum(a * b, axis=axis) / (norm_a * norm_b + _EPSILON)


def _relations(teacher_logits, student_logits, temperature):
    """`(inter, intra)`: per-example `1 - pearson` over classes, and the
    batch's `1 - mean over classes of pearson` over examples, both times T^2.
    Leading axes beyond the batch (tokens) are flattened into it."""
    check_logit_shapes(teacher_logits, student_logits, "dist")
    temperature = ops.cast(temperature, "float32")
    classes = teacher_logits.shape[-1]
    teacher = ops.exp(soften(ops.reshape(teacher_logits, (-1, classes)), temperature))
    student = ops.exp(soften(ops.reshape(student_logits, (-1, classes)), temperature))
    scale = ops.square(temperature)
    inter = scale * (1.0 - _pearson(student, teacher, axis=1))
    intra = scale * (1.0 - ops.mean(_pearson(student, teacher, axis=0)))
    # A correlation across the batch is undefined for one example: no term.
    intra = ops.where(ops.shape(teacher)[0] > 1, intra, 0.0)
    return ops.reshape(inter, ops.shape(teacher_logits)[:-1]), intra


def dist(teacher_logits, student_logits, *, beta=1.0, gamma=1.0, temperature=1.0):
    """DIST: match the teacher's class relations, not its probabilities.

    With `p = softmax(z / T)` for a batch of examples, the inter-class
    relation is the Pearson correlation between the teacher's and the
    student's probability vectors of each example, the intra-class relation
    the correlation of each class's probabilities across the batch:

        DIST = T^2 * (beta * mean_i (1 - pearson(p_s[i, :], p_t[i, :]))
                      + gamma * mean_c (1 - pearson(p_s[:, c], p_t[:, c])))

    For a batch of one example the intra-class term is 0: a correlation
    across one example is undefined.

    A correlation ignores the scale and shift of the probabilities, which
    leaves a weaker student room when the teacher is much stronger.

    Args:
        teacher_logits: Tensor `(batch, ..., num_classes)`.
        student_logits: Tensor of the same shape.
        beta: Weight of the inter-class term. Defaults to 1.0.
        gamma: Weight of the intra-class term. Defaults to 1.0.
        temperature: float > 0. Defaults to 1.0.

    Returns:
        A float32 scalar: the intra-class term is a property of the batch.

    Reference:
        - [Huang et al., 2022](https://arxiv.org/abs/2205.10536)
    """
    inter, intra = _relations(teacher_logits, student_logits, temperature)
    return beta * ops.mean(inter) + gamma * intra


@keras.saving.register_keras_serializable(package="keras_distill")
class DIST(LogitLoss):
    """DIST's inter- and intra-class relation loss as a `keras.losses.Loss`.

    `y_true` is the teacher's logits, `y_pred` the student's. See
    `keras_distill.losses.dist`. Each example's value is its inter-class
    term plus the batch's intra-class term, so the batch mean is DIST;
    `sample_weight` weights the inter-class term per example (the
    intra-class term is the whole batch's).

    Args:
        beta: Weight of the inter-class term. Defaults to 1.0.
        gamma: Weight of the intra-class term. Defaults to 1.0.
        temperature: float > 0 (or a scalar `keras.Variable`). Defaults
            to 1.0.
        reduction: As in `keras.losses.Loss`.
        name: Optional name.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Reference:
        - [Huang et al., 2022](https://arxiv.org/abs/2205.10536)
    """

    uses_temperature = True

    def __init__(self, beta=1.0, gamma=1.0, temperature=1.0, reduction="sum_over_batch_size", name="dist", dtype=None):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)
        self.beta = check_number(beta, "beta", example=1.0, at_least=0.0)
        self.gamma = check_number(gamma, "gamma", example=1.0, at_least=0.0)

    def call(self, y_true, y_pred):
        inter, intra = _relations(y_true, y_pred, self.temperature)
        return self.beta * inter + self.gamma * intra

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "gamma": self.gamma}
