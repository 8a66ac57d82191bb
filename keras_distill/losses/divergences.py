"""Divergences for generative models: reverse KL and the generalized
Jensen-Shannon divergence of GKD (Agarwal et al., ICLR 2024)."""

import math

import keras
from keras import ops

from keras_distill._validate import check_number
from keras_distill.losses.base import LogitLoss
from keras_distill.losses.base import check_logit_shapes
from keras_distill.losses.base import kl_from_log_probs
from keras_distill.losses.base import tempered
from keras_distill.losses.soft_targets import _SoftTargetLoss
from keras_distill.losses.soft_targets import soft_target_kl_divergence


def soft_target_reverse_kl(teacher_logits, student_logits, *, temperature=1.0):
    """T^2 * KL(softmax(student / T) || softmax(teacher / T)) per example.

    Mode-seeking: the student is penalized for mass where the teacher has
    little, not for missing some of the teacher's modes (MiniLLM, GKD).
    Computed from float32 log-softmax.

    Args:
        teacher_logits: Tensor of shape `(..., num_classes)`.
        student_logits: Tensor of the same shape.
        temperature: float (or scalar tensor) > 0.

    Returns:
        A float32 tensor of shape `teacher_logits.shape[:-1]`.
    """
    check_logit_shapes(teacher_logits, student_logits, "soft_target_reverse_kl")
    return soft_target_kl_divergence(student_logits, teacher_logits, temperature=temperature)


def generalized_jsd(teacher_logits, student_logits, *, beta=0.5, temperature=1.0):
    """T^2 * generalized Jensen-Shannon divergence per example.

    With `p` the teacher's and `q` the student's softened distributions and
    `m = beta * p + (1 - beta) * q`:
    `JSD(beta) = beta * KL(p || m) + (1 - beta) * KL(q || m)`. As beta
    goes to 0 it behaves like forward KL scaled by beta, as beta goes to 1
    like reverse KL scaled by 1 - beta (GKD, Agarwal et al.); beta = 0.5 is
    the symmetric Jensen-Shannon divergence, bounded by log 2.

    Args:
        teacher_logits: Tensor of shape `(..., num_classes)`.
        student_logits: Tensor of the same shape.
        beta: float in (0, 1), the mixing coefficient.
        temperature: float (or scalar tensor) > 0.

    Returns:
        A float32 tensor of shape `teacher_logits.shape[:-1]`.
    """

    def divergence(teacher_log_probs, student_log_probs):
        mixture_log_probs = ops.logsumexp(
            ops.stack(
                [teacher_log_probs + math.log(beta), student_log_probs + math.log(1.0 - beta)],
                axis=0,
            ),
            axis=0,
        )
        return beta * kl_from_log_probs(teacher_log_probs, mixture_log_probs) + (1.0 - beta) * kl_from_log_probs(
            student_log_probs, mixture_log_probs
        )

    return tempered(divergence, teacher_logits, student_logits, temperature, "generalized_jsd")


@keras.saving.register_keras_serializable(package="keras_distill")
class SoftTargetReverseKL(_SoftTargetLoss):
    """Reverse KL, `T^2 * KL(softmax(y_pred / T) || softmax(y_true / T))`.

    `y_true` is the teacher's logits, `y_pred` the student's. See
    `keras_distill.losses.soft_target_reverse_kl`.

    Args:
        temperature: float > 0. Defaults to 1.0.
        reduction: As in `keras.losses.Loss`.
        name: Optional name of the loss.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Examples:

    ```python
    distiller.compile(optimizer="adam", loss=None, alpha=0.0, distillation_loss="reverse_kl")
    ```

    Reference:
        - [Gu et al., 2024 (MiniLLM)](https://arxiv.org/abs/2306.08543)
    """

    function = staticmethod(soft_target_reverse_kl)


@keras.saving.register_keras_serializable(package="keras_distill")
class GeneralizedJSD(LogitLoss):
    """Generalized Jensen-Shannon divergence of GKD, times T^2.

    `y_true` is the teacher's logits, `y_pred` the student's. See
    `keras_distill.losses.generalized_jsd`.

    Args:
        beta: float in (0, 1), the mixing coefficient. Defaults to 0.5.
        temperature: float > 0. Defaults to 1.0.
        reduction: As in `keras.losses.Loss`.
        name: Optional name of the loss.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Examples:

    ```python
    distiller.compile(optimizer="adam", loss=None, alpha=0.0,
                      distillation_loss=keras_distill.losses.GeneralizedJSD(beta=0.9))
    ```

    Reference:
        - [Agarwal et al., ICLR 2024 (GKD)](https://arxiv.org/abs/2306.13649)
    """

    uses_temperature = True

    def __init__(self, beta=0.5, temperature=1.0, reduction="sum_over_batch_size", name="generalized_jsd", dtype=None):
        super().__init__(temperature=temperature, reduction=reduction, name=name, dtype=dtype)
        self.beta = check_number(
            beta, "beta", example=0.5, above=0.0, below=1.0, note="beta=0.5 is the symmetric Jensen-Shannon divergence."
        )

    def call(self, y_true, y_pred):
        return generalized_jsd(y_true, y_pred, beta=self.beta, temperature=self.temperature)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}
