"""What one distillation step computes besides the losses themselves.

- The outputs by name: a model returns one tensor (one output, named
  None), a dict of them or a list; the step reads each by its name.
- Teacher targets: the teachers' outputs (live, or cached by
  `keras_distill.precompute_teacher_outputs`) turned into float32 logits
  of the student's classes (probabilities back to logits, class subsets,
  the mixture of several teachers) or into packed top-k targets.
- Token weights: for outputs with a time axis, per-token weights so that a
  Keras loss's batch mean is the mean over real (unpadded) tokens.
- Replica scaling and the student's own regularization losses.

Every function takes and returns tensors (`keras.ops`), inside the step.
"""

import collections

import keras
from keras import ops

from keras_distill import _compat
from keras_distill.losses.standardization import standardize_logits
from keras_distill.losses.top_k_divergence import pack_top_k
from keras_distill.losses.top_k_divergence import top_k_teacher

# Keys of the target `keras_distill.with_teacher_outputs` packs for `fit`.
LABELS = "labels"
TEACHER_LOGITS = "teacher_logits"
TOP_K_INDICES = "top_k_indices"
TOP_K_LOG_PROBS = "top_k_log_probs"
# log() of probabilities that underflowed to 0 in float32.
LOG_FLOOR = 1e-30
PADDING_MASK = "padding_mask"

#: What the distillation loss compares with the student: `values` is float32
#: logits `(..., classes)`, or with `packed_top_k` the packed `(..., 2k)` targets of
#: `keras_distill.losses.pack_top_k`.
Targets = collections.namedtuple("Targets", ["values", "packed_top_k"])

#: `kind` is "single", "dict" or "list"; `names` the outputs' names, in order.
Structure = collections.namedtuple("Structure", ["kind", "names"])
#: One tensor: its one output is named None.
SINGLE = Structure("single", (None,))


def of_value(outputs, names=None):
    """The structure of a model's outputs (symbolic or computed). `names`
    names a list's outputs (else their positions)."""
    if isinstance(outputs, dict):
        return Structure("dict", tuple(outputs))
    if isinstance(outputs, (list, tuple)) and len(outputs) > 1:
        names = tuple(names) if names is not None and len(names) == len(outputs) else None
        return Structure("list", names or tuple(str(index) for index in range(len(outputs))))
    return SINGLE


def named(values, structure):
    """`values` (one tensor, or a model's dict or list) as a dict by output name."""
    if structure.kind == "single":
        # A one-element list (`outputs=[logits]`, or a `call` returning one)
        # is its one tensor.
        if isinstance(values, (list, tuple)) and len(values) == 1:
            values = values[0]
        return {None: values}
    if isinstance(values, dict):
        return {name: values[name] for name in structure.names if name in values}
    return dict(zip(structure.names, values))


def named_labels(labels, structure):
    """`labels` as a dict by output name (empty without labels)."""
    if labels is None:
        return {}
    if structure.kind == "single":
        return {None: labels}
    if isinstance(labels, dict):
        return labels
    if isinstance(labels, (list, tuple)) and len(labels) == len(structure.names):
        return dict(zip(structure.names, labels))
    raise ValueError(
        f"The labels of a model with several outputs are a dict by output name. Received labels of type "
        f"{type(labels).__name__} for outputs {list(structure.names)}. Pass y={{name: labels, ...}}."
    )


def is_cached_target(y):
    """Whether `y` came from `keras_distill.with_teacher_outputs`."""
    return isinstance(y, dict) and TEACHER_LOGITS in y and set(y) <= {LABELS, TEACHER_LOGITS}


def split_target(y):
    """`(labels, cached teacher outputs)`; the second is None for plain labels."""
    if is_cached_target(y):
        return y.get(LABELS), y[TEACHER_LOGITS]
    return y, None


def as_logits(outputs, kind):
    """A teacher's outputs as float32 logits: `log p` for probabilities,
    which is exact for every temperature (`softmax(log(p) / T)` is the
    tempered distribution). Works on tensors and NumPy arrays."""
    outputs = ops.cast(outputs, "float32")
    if kind == "probabilities":
        outputs = ops.log(ops.maximum(outputs, LOG_FLOOR))
    return outputs


class TeacherTargets:
    """Turns a distiller's teacher outputs into its loss's targets.

    One instance per distiller holds what the targets depend on, so that
    the live teacher, the cached outputs and every distiller build them the
    same way.

    Args:
        kinds: `"logits"` or `"probabilities"`, one per teacher.
        temperature: The distiller's temperature variable (several teachers
            are mixed at the temperature of the loss).
        weights: One weight per teacher, summing to 1 (read only for
            several teachers).
        classes: Teacher class indices of the student's classes, or None.
        top_k: None, or k: the targets are the teacher's top k classes.
    """

    def __init__(self, kinds, temperature, *, weights=None, classes=None, top_k=None):
        self.kinds = list(kinds)
        self.temperature = temperature
        self.weights = weights
        self.classes = classes
        self.top_k = top_k

    def logits(self, outputs, kinds=None):
        """The teachers' outputs (a list, one per teacher) as one tensor of
        float32 logits of the student's classes, without gradient: the
        mixture for several teachers, dense even with `top_k`."""
        kinds = kinds or self.kinds
        logits = [select_classes(as_logits(output, kind), self.classes) for output, kind in zip(outputs, kinds)]
        logits = logits[0] if len(logits) == 1 else mixture_logits(logits, self.weights, self.temperature)
        return ops.stop_gradient(logits)

    def from_outputs(self, outputs):
        """Targets from the live teachers' outputs (a list, one per teacher)."""
        return self._from_logits(self.logits(outputs))

    def from_cache(self, cached):
        """Targets from a batch of cached outputs: logits of shape `(batch,
        ..., classes)`, `(batch, teachers, classes)` for several teachers, or
        the top-k dict."""
        if isinstance(cached, dict):
            packed = pack_top_k(cached[TOP_K_INDICES], cached[TOP_K_LOG_PROBS])
            return Targets(ops.stop_gradient(packed), packed_top_k=True)
        count = len(self.kinds)
        outputs = [cached] if count == 1 else [cached[:, index] for index in range(count)]
        return self._from_logits(self.logits(outputs, kinds=["logits"] * count))

    def _from_logits(self, logits):
        if self.top_k is None:
            return Targets(logits, packed_top_k=False)
        return Targets(ops.stop_gradient(pack_top_k(*top_k_teacher(logits, self.top_k))), packed_top_k=True)


def select_classes(logits, classes):
    """The teacher logits of the student's classes, in the student's order.
    The temperature softmax of the distillation loss renormalizes them."""
    if classes is None:
        return logits
    return ops.take(logits, ops.convert_to_tensor(classes, "int32"), axis=-1)


def mixture_logits(teacher_logits, teacher_weights, temperature):
    """Logits whose temperature softmax is the teachers' weighted mixture.

    `T * log(sum_k w_k softmax(z_k / T))`: softening them at `T`, as every
    temperature loss does, gives back the mixture exactly.
    """
    temperature = ops.cast(temperature, "float32")
    log_probs = ops.stack([ops.log_softmax(logits / temperature, axis=-1) for logits in teacher_logits], axis=0)
    log_weights = ops.log(ops.convert_to_tensor(teacher_weights, "float32"))
    log_weights = ops.reshape(log_weights, (-1,) + (1,) * (len(log_probs.shape) - 1))
    return temperature * ops.logsumexp(log_probs + log_weights, axis=0)


def padding_mask(x):
    """`x["padding_mask"]` for keras-hub style dict inputs, else None."""
    if isinstance(x, dict) and PADDING_MASK in x:
        return x[PADDING_MASK]
    return None


def token_weights(x, student_logits, sample_weight):
    """Per-token weights for the losses and for the metrics.

    Returns `(loss_weights, metric_weights)`. For outputs without a time
    axis both are `sample_weight`. For `(batch, sequence, classes)` outputs
    `metric_weights` is padding mask x sample weight (broadcast per token;
    a per-token weight of 0 is padding too), and `loss_weights` is the same
    scaled by `tokens / real tokens`, so that a Keras loss's
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
            nonzero = ops.cast(ops.not_equal(sample_weight, 0), "float32")
            mask = nonzero if mask is None else ops.cast(mask, "float32") * nonzero
    if mask is None:
        return weights, weights
    total = ops.cast(token_shape[0] * token_shape[1], "float32")
    real = ops.sum(ops.cast(mask, "float32"))
    return weights * ops.divide_no_nan(total, real), weights


def response_losses(hard_loss, distillation_loss, labels, teacher_logits, student_logits, standardize, reduce):
    """The two terms of the response loss, float32 scalars:
    `hard_loss(labels, student_logits)` and
    `distillation_loss(teacher_logits, student_logits)` (0 for a loss that
    is None), both models' logits z-scored first for the second with
    `standardize`, and the labels given to a
    loss that `needs_labels`. `reduce(loss, y_true, y_pred)` makes a Keras
    loss a scalar: `Distiller` takes the weighted batch mean,
    `CausalLMDistiller` a weighted sum over one chunk of tokens."""
    if hard_loss is None:
        hard = ops.zeros((), dtype="float32")
    else:
        hard = ops.cast(reduce(hard_loss, labels, student_logits), "float32")
    if distillation_loss is None:
        return hard, ops.zeros((), dtype="float32")
    if standardize:
        teacher_logits, student_logits = standardize_logits(teacher_logits), standardize_logits(student_logits)
    if getattr(distillation_loss, "needs_labels", False):
        teacher_logits = (teacher_logits, labels)
    return hard, ops.cast(reduce(distillation_loss, teacher_logits, student_logits), "float32")


def mask_ignored(student_logits, labels, ignore_class):
    """`(labels, student_logits)` for the metrics, leaving out wherever
    `labels == ignore_class`, as the hard-label loss does (e.g. the
    unlabelled examples of semi-supervised distillation): the logits carry
    a Keras mask there, which every metric honours, weighted or not, and
    the labels there become class 0, hidden by the mask, so that a metric
    computed on every label (a cross-entropy) never reads class -1."""
    if ignore_class is None or labels is None:
        return labels, student_logits
    keep = ops.not_equal(labels, ignore_class)
    masked = ops.multiply(student_logits, 1)  # a new tensor: the loss's stays unmasked
    _compat.set_keras_mask(masked, keep)
    return ops.where(keep, labels, ops.zeros_like(labels)), masked


def replicas_in_sync():
    """Number of replicas of the current `tf.distribute` strategy, else 1.

    Keras' own losses divide a batch mean by it, so that the gradients
    summed over replicas equal the single-device gradient; a term built
    from raw ops must be divided the same way, and every tracked metric
    multiplied back.
    """
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def unscale(value):
    """A per-replica loss term as a metric: multiplied by the replicas."""
    replicas = replicas_in_sync()
    if replicas == 1:
        return value
    return ops.multiply(value, ops.cast(replicas, value.dtype))


def regularization_loss(losses, teacher_losses):
    """The sum of `losses` that are not `teacher_losses`, in float32.

    Losses are told apart by identity: a teacher with an activity
    regularizer adds losses when it runs, and they must not train the
    student. Divided by the replicas in sync, like the Keras losses.
    """
    own = [ops.cast(ops.sum(loss), "float32") for loss in losses if not any(loss is other for other in teacher_losses)]
    if not own:
        return ops.zeros((), dtype="float32")
    total = ops.sum(ops.stack(own))
    replicas = replicas_in_sync()
    return total if replicas == 1 else total / replicas


def metric_arguments(x, labels, predictions, sample_weight, structure, ignore_class):
    """`(labels, predictions, sample_weight)` for Keras' compiled metrics.

    One output: per-token weights for a time axis, and the predictions
    masked where the hard-label loss ignores the label (`ignore_class`).
    Several: labels in the outputs' structure, an output without labels
    (distilled only) given zeros, which no metric reads.
    """
    if structure.kind == "single":
        predictions = named(predictions, structure)[None]
        _, weights = token_weights(x, predictions, sample_weight)
        labels, predictions = mask_ignored(predictions, labels, ignore_class)
        return labels, predictions, weights
    if not isinstance(labels, dict):
        return labels, predictions, sample_weight
    values = named(predictions, structure)
    filled = {name: labels[name] if name in labels else ops.zeros_like(values[name]) for name in structure.names}
    if structure.kind == "list":
        filled = [filled[name] for name in structure.names]
    return filled, predictions, sample_weight
