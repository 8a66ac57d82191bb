"""Several teachers and class subsets: turning teacher outputs into the
logits a distillation loss compares with the student's."""

import math

from keras import ops

from keras_distill.distillers import model_checks
from keras_distill.losses.soft_targets import SoftTargetKLDivergence

TEACHER_OUTPUTS = ("auto", "logits", "probabilities")
# log() of probabilities that underflowed to 0 in float32.
LOG_FLOOR = 1e-30


def as_teacher_list(teacher):
    """`teacher` as a non-empty list of distinct `keras.Model`s."""
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError(
            "`teacher` is an empty list. Pass a keras.Model, or a list of "
            "them to distill from several teachers."
        )
    for index, model in enumerate(teachers):
        argument = "teacher" if len(teachers) == 1 else f"teacher[{index}]"
        model_checks.check_model(model, argument)
    model_checks.check_distinct(teachers, "teacher")
    return teachers


def validate_teacher_outputs(teacher_outputs):
    if teacher_outputs not in TEACHER_OUTPUTS:
        raise ValueError(
            f"`teacher_outputs` must be one of {TEACHER_OUTPUTS}. "
            f"Received: teacher_outputs={teacher_outputs!r}."
        )


def output_kind(model, teacher_outputs):
    """`"logits"` or `"probabilities"`: `teacher_outputs`, or with "auto"
    what the teacher's last layer says (a softmax means probabilities)."""
    if teacher_outputs != "auto":
        return teacher_outputs
    return "probabilities" if model_checks.ends_with_softmax(model) else "logits"


def normalize_teacher_weights(teacher_weights, count):
    """Weights that sum to 1, one per teacher; `None` gives equal weights."""
    if teacher_weights is None:
        return [1.0 / count] * count
    weights = list(teacher_weights) if isinstance(teacher_weights, (list, tuple)) else None
    valid = (
        weights is not None
        and len(weights) == count
        and all(
            not isinstance(w, bool) and isinstance(w, (int, float)) and math.isfinite(w) and w >= 0
            for w in weights
        )
        and sum(weights) > 0
    )
    if not valid:
        raise ValueError(
            f"`teacher_weights` must be {count} numbers >= 0 with a positive "
            f"sum, one per teacher. Received: teacher_weights={teacher_weights!r}. "
            f"Use e.g. teacher_weights={[1.0] * count}."
        )
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def check_teacher_classes(teacher_classes, teacher_shape, student_shape, teacher_name):
    """Validates `teacher_classes` against the two output shapes; returns the
    teacher's output shape after the selection."""
    if teacher_classes is None:
        return teacher_shape
    classes = list(teacher_classes) if isinstance(teacher_classes, (list, tuple)) else None
    if classes is None or not classes or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in classes
    ):
        raise ValueError(
            "`teacher_classes` must be a non-empty list of class indices of "
            f"the teacher, in the student's class order. Received: "
            f"teacher_classes={teacher_classes!r}. Use e.g. teacher_classes=[3, 5, 7]."
        )
    if len(set(classes)) != len(classes):
        raise ValueError(
            f"`teacher_classes` repeats a class: {classes}. Each student class "
            "maps to one distinct teacher class."
        )
    if teacher_shape is not None and teacher_shape[-1] is not None:
        bad = [c for c in classes if not 0 <= c < teacher_shape[-1]]
        if bad:
            raise ValueError(
                f"`teacher_classes` {bad} out of range: teacher {teacher_name!r} "
                f"has {teacher_shape[-1]} classes (indices 0 to "
                f"{teacher_shape[-1] - 1}). Received: teacher_classes={classes}."
            )
    if student_shape is not None and student_shape[-1] not in (None, len(classes)):
        raise ValueError(
            f"`teacher_classes` has {len(classes)} entries but the student "
            f"outputs {student_shape[-1]} classes. Give one teacher class "
            "index per student class, in the student's order."
        )
    if teacher_shape is None:
        return None
    return tuple(teacher_shape[:-1]) + (len(classes),)


def select_classes(logits, teacher_classes):
    """The teacher logits of the student's classes, in the student's order.
    The temperature softmax of the distillation loss renormalizes them."""
    if teacher_classes is None:
        return logits
    return ops.take(logits, ops.convert_to_tensor(teacher_classes, "int32"), axis=-1)


def mixture_logits(teacher_logits, teacher_weights, temperature):
    """Logits whose temperature softmax is the teachers' weighted mixture.

    `T * log(sum_k w_k softmax(z_k / T))`: softening them at `T`, as every
    temperature loss does, gives back the mixture exactly.
    """
    temperature = ops.cast(temperature, "float32")
    log_probs = ops.stack(
        [ops.log_softmax(logits / temperature, axis=-1) for logits in teacher_logits],
        axis=0,
    )
    log_weights = ops.log(ops.convert_to_tensor(teacher_weights, "float32"))
    log_weights = ops.reshape(log_weights, (-1,) + (1,) * (len(log_probs.shape) - 1))
    return temperature * ops.logsumexp(log_probs + log_weights, axis=0)


def top_k_needs_kl(teacher_top_k, loss):
    """Whether a top-k teacher was paired with a loss other than the KL."""
    return teacher_top_k is not None and not isinstance(loss, SoftTargetKLDivergence)


def validate_top_k(teacher_top_k, teacher_count, teacher_classes, student_shape):
    if teacher_top_k is None:
        return
    classes = student_shape[-1] if student_shape is not None else None
    if (
        isinstance(teacher_top_k, bool)
        or not isinstance(teacher_top_k, int)
        or teacher_top_k < 1
        or (classes is not None and teacher_top_k > classes)
    ):
        raise ValueError(
            "`teacher_top_k` must be an int between 1 and the number of "
            f"classes ({classes}). Received: teacher_top_k={teacher_top_k!r}. "
            "Use e.g. teacher_top_k=64, or None for the dense teacher."
        )
    if teacher_count > 1 or teacher_classes is not None:
        raise ValueError(
            "`teacher_top_k` works with one teacher over the student's own "
            f"classes. Received {teacher_count} teacher(s) and teacher_classes="
            f"{teacher_classes!r}. Drop teacher_top_k, or distill from one teacher."
        )
