"""Logit standardization (Sun et al., CVPR 2024)."""

from keras import ops

# The authors' floor under the standard deviation.
EPSILON = 1e-7
_VARIANCE_FLOOR = 1e-30


def standardize_logits(logits):
    """Z-scores of logits over the classes: `(z - mean) / (std + 1e-7)`.

    Applied to both models' logits before a softmax-based distillation loss
    (`compile(..., standardize_logits=True)` on a distiller), it makes the
    loss compare the logits' relations rather than their range: the student
    need not match the teacher's logit scale, only its shape. The standard
    deviation is the unbiased one (over `num_classes - 1`), as in the
    authors' code (`torch.std`); the temperature then acts on unit-variance
    logits.

    Args:
        logits: Tensor `(..., num_classes)`, with at least two classes.

    Returns:
        A float32 tensor of the same shape.

    Reference:
        - [Sun et al., 2024](https://arxiv.org/abs/2403.01427)
    """
    logits = ops.cast(logits, "float32")
    classes = logits.shape[-1]
    centered = logits - ops.mean(logits, axis=-1, keepdims=True)
    if classes == 1:
        return centered  # one class: nothing to standardize, all zeros
    variance = ops.sum(ops.square(centered), axis=-1, keepdims=True) / (classes - 1)
    # Constant logits (a zero-initialized head) have no spread: the floor keeps
    # sqrt's gradient finite there, where it would be infinite times zero.
    return centered / (ops.sqrt(ops.maximum(variance, _VARIANCE_FLOOR)) + EPSILON)
