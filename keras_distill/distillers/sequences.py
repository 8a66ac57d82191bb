"""Token-level distillation: per-token losses averaged over real tokens.

For outputs with a time axis, `(batch, sequence, classes)`, every loss is
computed per token. Padded positions come from the inputs' `padding_mask`
(keras-hub's convention) or from a per-token `sample_weight` of shape
`(batch, sequence)` (a token of weight 0 is padding); they contribute
nothing, and the mean is over the real tokens only, as Keras does for
masked outputs. Keras applies weights to `weighted_metrics` only: compile
with `weighted_metrics=["accuracy"]` for an accuracy over real tokens.
"""

from keras import ops

PADDING_MASK = "padding_mask"


def padding_mask(x):
    """`x["padding_mask"]` for keras-hub style dict inputs, else None."""
    if isinstance(x, dict) and PADDING_MASK in x:
        return x[PADDING_MASK]
    return None


def token_weights(x, student_logits, sample_weight):
    """Per-token weights for the losses and for the metrics.

    Returns `(loss_weights, metric_weights)`. For outputs without a time
    axis both are `sample_weight`. Otherwise `metric_weights` is
    padding mask x sample weight (broadcast per token), and `loss_weights`
    is the same scaled by `tokens / real tokens`, so that a Keras loss's
    `sum_over_batch_size` mean becomes the mean over real tokens.
    """
    if len(student_logits.shape) < 3:
        return sample_weight, sample_weight
    mask = padding_mask(x)
    token_shape = ops.shape(student_logits)[:2]
    weights = ops.ones(token_shape, "float32")
    if mask is not None:
        weights = weights * ops.cast(mask, "float32")
    if sample_weight is not None:
        sample_weight = ops.cast(sample_weight, "float32")
        per_token = len(sample_weight.shape) >= 2
        if not per_token:
            sample_weight = ops.expand_dims(sample_weight, -1)
        weights = weights * sample_weight
        if per_token:
            # A token of weight 0 is padding, whatever the mask says.
            nonzero = ops.cast(ops.not_equal(sample_weight, 0), "float32")
            mask = nonzero if mask is None else ops.cast(mask, "float32") * nonzero
    if mask is None:
        return weights, weights
    total = ops.cast(token_shape[0] * token_shape[1], "float32")
    real = ops.sum(ops.cast(mask, "float32"))
    return weights * ops.divide_no_nan(total, real), weights
