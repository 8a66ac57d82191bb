"""Checks of the data handed to `fit` / `evaluate`, before any step runs.

They read a bounded `Sample` of it: the first `SAMPLE_SIZE` examples of
arrays, the first batch of a `tf.data.Dataset` or a
`keras.utils.PyDataset`, so their cost does not grow with the data. Two
read every example, and say why: the labels' range and the token ids'
range, one number (per token) per example, which a model would otherwise
turn into a silently wrong loss anywhere in the data.

A mistake found here costs nothing; found while the first step is traced
it costs a traceback from deep inside Keras, and found later a silently
wrong model (labels out of range give a hard loss of 0 on JAX, a NaN pixel
poisons every weight on TensorFlow).
"""

import types

import keras
import numpy as np

from keras_distill._training import step
from keras_distill._validate import check_int

#: Examples of an array read by the checks of inputs.
SAMPLE_SIZE = 1024

_SPARSE = ("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy")
_CATEGORICAL = ("CategoricalCrossentropy", "categorical_crossentropy")


def is_dataset(x):
    """Whether `x` is a `tf.data.Dataset` (without importing TensorFlow)."""
    module = type(x).__module__ or ""
    return module.startswith("tensorflow") and hasattr(x, "element_spec")


def is_array_data(x):
    if isinstance(x, dict):
        return all(is_array_data(value) for value in x.values())
    if isinstance(x, (list, tuple)):
        return all(is_array_data(value) for value in x)
    return hasattr(x, "shape") and hasattr(x, "dtype")


class Sample:
    """What the checks read of `fit` / `evaluate` data, read once.

    `inputs` and `targets` are NumPy arrays: the first `SAMPLE_SIZE`
    examples of arrays, or the first batch of a dataset, a generator or a
    torch `DataLoader`.
    `all_targets` are the whole targets of arrays (the labels, for the
    checks that read every label), else `targets`. A generator's first
    batch is read and put back: `x` is then the data to train on.
    """

    def __init__(self, x, y=None):
        self.x, self.y = x, y
        self.inputs = self.targets = self.all_targets = None
        self.empty = False
        if y is None and is_dataset(x):
            element = next(iter(x.take(1)), None)
            self.empty = element is None
            if element is not None:
                element = keras.tree.map_structure(lambda tensor: tensor.numpy(), element)
                self.inputs, self.targets = _split(element)
        elif y is None and isinstance(x, keras.utils.PyDataset):
            self.inputs, self.targets = _split(x[0])
        elif isinstance(x, types.GeneratorType):
            first = next(x, None)
            self.empty = first is None
            if first is not None:
                self.x = _put_back(first, x)
                self.inputs, self.targets = _split(first)
        elif _reiterable(x):
            # A torch DataLoader: iterating it again starts from its first batch.
            first = next(iter(x), None)
            self.empty = first is None
            if first is not None:
                # Collated as a list, which Keras unpacks as (x, y, sample_weight).
                first = tuple(first) if isinstance(first, list) else first
                first = keras.tree.map_structure(np.asarray, first)
                self.inputs, self.targets = _split(first)
        elif is_array_data(x):
            leaves = keras.tree.flatten(x)
            self.empty = bool(leaves) and len(leaves[0].shape) > 0 and leaves[0].shape[0] == 0
            self.inputs = keras.tree.map_structure(lambda array: array[:SAMPLE_SIZE], x)
            if y is not None and is_array_data(y):
                self.targets = keras.tree.map_structure(lambda array: array[:SAMPLE_SIZE], y)
            self.all_targets = y
        if self.all_targets is None:
            self.all_targets = self.targets

    @property
    def target_spec(self):
        """The targets, or for a dataset their element spec (None: none)."""
        if self.y is not None:
            return self.y
        if is_dataset(self.x):
            spec = self.x.element_spec
            return spec[1] if isinstance(spec, tuple) and len(spec) > 1 else None
        return self.targets

    def uses_cached_outputs(self):
        """Whether the data carries cached teacher outputs."""
        return step.is_cached_target(self.target_spec)

    def has_labels(self):
        """Whether the data carries labels: for arrays, `y`; for a dataset
        or a generator, a second element (cached outputs may come without
        labels)."""
        targets = self.target_spec
        if step.is_cached_target(targets):
            return step.LABELS in targets
        return targets is not None


def _put_back(first, generator):
    yield first
    yield from generator


def _reiterable(x):
    """Data that gives a fresh iterator each time it is iterated (a torch
    `DataLoader`), as opposed to arrays, datasets and generators."""
    if isinstance(x, (dict, list, tuple, str, bytes, np.ndarray)) or not hasattr(x, "__iter__"):
        return False
    return hasattr(x, "__len__") and type(x).__module__.startswith("torch.")


def _split(element):
    if isinstance(element, tuple):
        return element[0], element[1] if len(element) > 1 else None
    return element, None


def check_batch_sizes(kwargs):
    """`batch_size` and its kin >= 1 where given: Keras reads 0 as "not
    given" and trains on batches of 32 without a word."""
    for name in ("batch_size", "validation_batch_size", "steps_per_epoch", "validation_steps", "steps"):
        if kwargs.get(name) is not None:
            check_int(kwargs[name], name, example=32, at_least=1)


def check_not_empty(sample, owner):
    """Refuses data of no examples (Keras fails on them with a
    `StopIteration` or an `UnboundLocalError` after its callbacks began)."""
    if not sample.empty:
        return
    if is_dataset(sample.x):
        raise ValueError(
            f"{owner} got a dataset that yields no batch. Pass a dataset with at least one example; check "
            "the filtering, `take` or `skip` that built it."
        )
    if isinstance(sample.x, types.GeneratorType):
        raise ValueError(f"{owner} got a generator that yields no batch. Pass one that yields at least one.")
    shape = tuple(keras.tree.flatten(sample.x)[0].shape)
    raise ValueError(
        f"{owner} got inputs with no examples (shape {shape}). Pass at least one example; "
        "check the slicing or filtering that built them."
    )


def loss_kind(loss):
    """`"sparse"`, `"categorical"` or None (a loss whose labels we cannot know)."""
    names = {type(loss).__name__, getattr(getattr(loss, "fn", None), "__name__", "")}
    if names & set(_SPARSE):
        return "sparse"
    if names & set(_CATEGORICAL):
        return "categorical"
    return None


def check_labels(labels, loss, classes, *, owner="the student"):
    """Refuses labels that `loss` would silently misread: out of range or
    fractional class indices, one-hot labels for a sparse loss, sparse
    labels for a categorical one, non-finite values.

    Reads every label: one out of range anywhere trains silently wrong
    (JAX's gather clamps it), and labels are one number per example.
    """
    if labels is None or loss is None or classes is None:
        return
    labels = np.asarray(labels) if isinstance(labels, np.ndarray) else np.asarray(keras.ops.convert_to_numpy(labels))
    kind = loss_kind(loss)
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError(
            f"The labels contain {int(np.sum(~np.isfinite(labels)))} NaN or infinite value(s). "
            "Remove those examples, or mark them unlabeled with an integer such as -1 and "
            "SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)."
        )
    if kind == "sparse":
        _check_class_indices(labels, loss, classes, owner)
    elif kind == "categorical" and (labels.ndim < 2 or labels.shape[-1] != classes):
        raise ValueError(
            f"The hard-label loss {type(loss).__name__} takes one-hot labels of {classes} classes, but "
            f"the labels have shape {labels.shape}. Pass keras.utils.to_categorical(y, {classes}), or use "
            "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) with class indices."
        )


def _check_class_indices(labels, loss, classes, owner):
    if labels.ndim >= 2 and labels.shape[-1] == classes and _looks_one_hot(labels[:SAMPLE_SIZE]):
        raise ValueError(
            f"The labels look one-hot (shape {labels.shape}, rows of 0s and a 1), but the hard-label "
            f"loss {type(loss).__name__} takes class indices. Use "
            "loss=keras.losses.CategoricalCrossentropy(from_logits=True), or pass "
            "y=labels.argmax(axis=-1)."
        )
    if labels.dtype.kind == "f":
        fractional = labels[labels != np.round(labels)]
        if fractional.size:
            raise ValueError(
                f"The labels are class indices, but {fractional.size} are not whole numbers, e.g. "
                f"{_examples(fractional)}; they would be truncated. Pass integer class indices in "
                f"[0, {classes}), e.g. y.astype('int64') after rounding as you intend."
            )
    if labels.size == 0 or (labels.min() >= 0 and labels.max() < classes):
        return
    ignore = getattr(loss, "ignore_class", None)
    outside = labels[(labels < 0) | (labels >= classes)]
    if ignore is not None:
        outside = outside[outside != ignore]
    if outside.size:
        fix = (
            f"or mark unlabeled examples with ignore_class={ignore}"
            if ignore is not None
            else "or, for unlabeled examples, pick a value such as -1 and pass "
            "SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)"
        )
        raise ValueError(
            f"{outside.size} label(s) are outside the {classes} classes of {owner} (0 to {classes - 1}): "
            f"{_examples(outside)}. Give {owner} as many output units as there are classes, {fix}."
        )


def check_labels_read_by(loss, labels, classes, *, owner="the student"):
    """Labels a distillation loss reads itself (`DecoupledKD` separates the
    target class with them), with no hard-label loss to check them: class
    indices below `classes` (or one-hot rows), whole numbers. A negative
    index is documented to mark an unlabeled example. Reads every label,
    as `check_labels` does."""
    if labels is None or classes is None:
        return
    labels = np.asarray(keras.ops.convert_to_numpy(labels))
    if labels.ndim >= 2 and labels.shape[-1] == classes:
        return
    name = type(loss).__name__
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError(
            f"distillation_loss={name} reads the labels, and {int(np.sum(~np.isfinite(labels)))} are NaN or "
            "infinite. Remove those examples, or mark them unlabeled with -1."
        )
    fractional = labels[labels != np.round(labels)] if labels.dtype.kind == "f" else labels[:0]
    if fractional.size:
        raise ValueError(
            f"distillation_loss={name} reads the labels as class indices, but {fractional.size} are not whole "
            f"numbers, e.g. {_examples(fractional)}; they would be truncated. Pass integer class indices in "
            f"[0, {classes})."
        )
    if labels.size and labels.max() >= classes:
        above = labels[labels >= classes]
        raise ValueError(
            f"distillation_loss={name} reads the labels as class indices of {owner}, which has {classes} classes "
            f"(0 to {classes - 1}), but {above.size} are above: {_examples(above)}. It would treat them as "
            "unlabeled, silently. Give the student as many output units as there are classes, or mark unlabeled "
            "examples with -1."
        )


def _looks_one_hot(labels):
    return bool(np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(-1) == 1))


def _examples(values):
    unique = np.unique(values)
    shown = ", ".join(f"{v:g}" for v in unique[:5])
    return shown + (f" and {len(unique) - 5} other value(s)" if len(unique) > 5 else "")


def vocabulary_size(model):
    """The token vocabulary of a keras-hub model (its backbone's token
    embedding), else None."""
    embedding = getattr(getattr(model, "backbone", None), "token_embedding", None)
    size = getattr(embedding, "input_dim", None)
    return int(size) if size else None


def check_token_ids(x, models):
    """Refuses token ids outside `[0, vocabulary)` of any keras-hub model:
    an embedding lookup does not check them (JAX clamps or returns NaN
    rows, so the loss is NaN or silently wrong).

    Reads every id of arrays (their minimum and maximum), for the same
    reason as the labels: one id out of range anywhere is a wrong loss.
    """
    if not isinstance(x, dict) or "token_ids" not in x:
        return
    sizes = [(model, vocabulary_size(model)) for model in models]
    sizes = [(model, size) for model, size in sizes if size is not None]
    if not sizes:
        return
    ids = np.asarray(keras.ops.convert_to_numpy(x["token_ids"]))
    if ids.size == 0 or ids.dtype.kind not in "iu":
        return
    low, high = ids.min(), ids.max()
    for model, size in sizes:
        if low >= 0 and high < size:
            continue
        outside = (ids < 0) | (ids >= size)
        values = np.unique(ids[outside])[:5].tolist()
        raise ValueError(
            f"{int(np.sum(outside))} token id(s) are outside the vocabulary of {model.name!r} (0 to "
            f"{size - 1}): {values}. Tokenize with that model's own tokenizer (or preprocessor), or give the "
            "models a vocabulary that holds every id."
        )


def check_sequence_length(x, models):
    """Refuses token sequences longer than a keras-hub model's learned
    positions (`max_sequence_length`), whose position embedding would fail
    deep inside the step ("Paddings must be non-negative" on TensorFlow)."""
    if not isinstance(x, dict) or "token_ids" not in x:
        return
    length = np.shape(x["token_ids"])[-1] if len(np.shape(x["token_ids"])) > 1 else None
    for model in models:
        limit = getattr(getattr(model, "backbone", None), "max_sequence_length", None)
        if length is not None and isinstance(limit, int) and length > limit:
            raise ValueError(
                f"The sequences have {length} tokens, but {model.name!r} has positions for {limit} "
                f"(max_sequence_length={limit}). Cut them to at most {limit} tokens (a keras-hub preprocessor's "
                f"sequence_length={limit}), or use a model built with max_sequence_length >= {length}."
            )


def check_sample_weight(sample_weight):
    """Refuses a `sample_weight` that is 0 everywhere: `fit` would train on
    nothing, with a loss of 0. Reads every weight (one per example, or per
    token): only all of them say it."""
    if sample_weight is None or not is_array_data(sample_weight):
        return
    weights = np.asarray(keras.ops.convert_to_numpy(sample_weight))
    if weights.size == 0 or np.any(weights != 0):
        return
    if weights.ndim >= 2:
        raise ValueError(
            f"None of the {len(weights)} rows has a position to learn (the per-token sample_weight is 0 "
            "everywhere): fit would train on nothing, with a loss of 0. Give weight to the tokens to learn. Data "
            "from generate_distillation_data or a keras-hub preprocessor weighs 0 everywhere when every prompt "
            "fills the whole sequence: shorten the prompts or raise the sequence length."
        )
    raise ValueError(
        f"Every sample_weight is 0 (of {len(weights)} examples): fit would train on nothing, with a loss of 0. "
        "Give a positive weight to the examples to learn."
    )


def check_finite_inputs(x, what="inputs"):
    """Refuses floating inputs with NaN or infinite values (a ReLU hides them
    from the loss while they fill the weights with NaN)."""
    if x is None:
        return
    for index, array in enumerate(keras.tree.flatten(x)):
        array = array if isinstance(array, np.ndarray) else np.asarray(keras.ops.convert_to_numpy(array))
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            where = np.argwhere(~np.isfinite(array))
            raise ValueError(
                f"The {what} contain {len(where)} NaN or infinite value(s) (first at index "
                f"{tuple(int(i) for i in where[0])}"
                f"{'' if index == 0 else f' of input {index}'}). Training on them fills the weights "
                "with NaN. Replace them (e.g. np.nan_to_num) or drop those examples."
            )


def check_cached_outputs(sample, expected_shape, teacher_count):
    """Cached teacher outputs in `fit` / `evaluate` data, against what the
    distiller's `teacher_count` teachers give (`expected_shape`, None for
    any): their shape,
    dtype (floating) and values (finite). Returns the cached outputs' top k
    (None for dense logits), for the distiller's checks of top-k targets."""
    spec = sample.target_spec
    if not step.is_cached_target(spec):
        return None
    cached = spec[step.TEACHER_LOGITS]
    if isinstance(cached, dict):
        return cached[step.TOP_K_INDICES].shape[-1]
    dtype = keras.backend.standardize_dtype(cached.dtype)
    if not dtype.startswith(("float", "bfloat")):
        raise ValueError(
            f"The cached teacher logits have dtype {dtype}; logits are floating point. Pass what "
            "keras_distill.precompute_teacher_outputs returned (float32 or float16)."
        )
    values = sample.targets[step.TEACHER_LOGITS] if isinstance(sample.targets, dict) else None
    if values is not None and not np.isfinite(np.asarray(values)).all():
        raise ValueError(
            f"The cached teacher logits contain {int(np.sum(~np.isfinite(np.asarray(values))))} NaN or infinite "
            "value(s) (float16 holds values up to 65504). Cache them in float32: "
            "precompute_teacher_outputs(teacher, x, dtype='float32')."
        )
    shape = tuple(cached.shape)
    if expected_shape is not None and (
        len(shape) != len(expected_shape)
        or any(e is not None and c is not None and c != e for c, e in zip(shape, expected_shape))
    ):
        raise ValueError(
            f"The cached teacher logits have shape {shape}, but this distiller's {teacher_count} teacher(s) give "
            f"{expected_shape} (None: any number of examples). Compute them with "
            "keras_distill.precompute_teacher_outputs(distiller.teacher, x) for the same teacher(s), in the "
            "same order."
        )
    return None


def check_cached_top_k_indices(sample, classes):
    """Cached top-k indices among the student's `classes` (read on the
    sample, like the inputs)."""
    targets = sample.targets
    if classes is None or not isinstance(targets, dict) or not isinstance(targets.get(step.TEACHER_LOGITS), dict):
        return
    indices = np.asarray(targets[step.TEACHER_LOGITS][step.TOP_K_INDICES])
    if indices.size and (indices.min() < 0 or indices.max() >= classes):
        raise ValueError(
            f"The cached top-k indices run from {indices.min()} to {indices.max()}, but the "
            f"student has {classes} classes (0 to {classes - 1}). Cache the outputs of a teacher "
            "with the student's classes."
        )


def check_class_weight(sample, class_weight):
    """`class_weight` with cached teacher outputs: Keras refuses it with a
    message about multi-output models; say what to do instead."""
    if class_weight is not None and sample.uses_cached_outputs():
        raise ValueError(
            "`class_weight` does not work with cached teacher outputs: Keras applies it to single-output "
            "targets only, and the cached target holds the labels and the logits. Pass the equivalent "
            "per-example weights instead: sample_weight=np.vectorize(class_weight.get)(y)."
        )


def validation_pair(kwargs):
    """`(x, y)` of `fit`'s `validation_data` when it is given as arrays
    with labels, else None (a dataset is checked as it is fed)."""
    validation = kwargs.get("validation_data")
    if isinstance(validation, (tuple, list)) and len(validation) > 1:
        return validation[0], validation[1]
    return None


def check_teacher_inputs_given(sample):
    """With `separate_teacher_inputs=True`, the inputs (of arrays, or a
    dataset's first batch) must be `{"student": ..., "teacher": ...}`."""
    inputs = sample.inputs
    if inputs is None:
        return
    if not isinstance(inputs, dict) or set(inputs) != {"student", "teacher"}:
        keys = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ValueError(
            "With separate_teacher_inputs=True the inputs must be a dict {'student': student_inputs, "
            f"'teacher': teacher_inputs}}, the same texts tokenized by each model's tokenizer. Received {keys}."
        )
