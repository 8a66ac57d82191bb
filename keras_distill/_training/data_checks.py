"""Checks of the data handed to `fit` / `evaluate`, before any step runs.

Arrays are checked whole (labels, finiteness, cached outputs); a
`tf.data.Dataset` or a `keras.utils.PyDataset` through its first batch.
A mistake found here costs nothing; found while the first step is traced it
costs a traceback from deep inside Keras, and found later a silently wrong
model (labels out of range give a hard loss of 0 on JAX, a NaN pixel
poisons every weight on TensorFlow).
"""

import functools

import keras
import numpy as np

from keras_distill._training import step
from keras_distill._training.checks import check_top_k
from keras_distill._training.checks import output_shape

_SPARSE = ("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy")
_CATEGORICAL = ("CategoricalCrossentropy", "categorical_crossentropy")


# A dataset's first element, read once per `_preflight` (`reads_once`): a
# pipeline may fill a shuffle buffer or run a generator to produce it.
_FIRST = {}
_UNREAD = object()


def reads_once(preflight):
    """Decorates a `_preflight(self, x, ...)`: while it runs, the checks
    below read a `tf.data.Dataset` `x`'s first element once, not once each."""

    @functools.wraps(preflight)
    def wrapper(self, x=None, *args, **kwargs):
        if not is_dataset(x) or id(x) in _FIRST:
            return preflight(self, x, *args, **kwargs)
        _FIRST[id(x)] = _UNREAD
        try:
            return preflight(self, x, *args, **kwargs)
        finally:
            del _FIRST[id(x)]

    return wrapper


def first_element(dataset):
    """A dataset's first element, or None if it yields none."""
    element = _FIRST.get(id(dataset), _UNREAD)
    if element is _UNREAD:
        element = next(iter(dataset.take(1)), None)
        if id(dataset) in _FIRST:
            _FIRST[id(dataset)] = element
    return element


def is_dataset(x):
    """Whether `x` is a `tf.data.Dataset` (without importing TensorFlow)."""
    module = type(x).__module__ or ""
    return module.startswith("tensorflow") and hasattr(x, "element_spec")


def uses_cached_outputs(x, y=None):
    """Whether the data handed to `fit` / `evaluate` carries cached logits."""
    if y is not None:
        return step.is_cached_target(y)
    if is_dataset(x):
        spec = x.element_spec
        return isinstance(spec, tuple) and len(spec) > 1 and step.is_cached_target(spec[1])
    return False


def has_labels(x, y):
    """Whether `fit` / `evaluate` data carries labels: for arrays, `y`; for
    a `tf.data.Dataset`, a second element (cached outputs may come without
    labels). Data that cannot be inspected without iterating it (a
    generator) counts as labeled: its first step tells."""
    if y is None:
        if is_dataset(x):
            spec = x.element_spec
            y = spec[1] if isinstance(spec, tuple) and len(spec) > 1 else None
        elif not _is_array_data(x):
            return True
    if step.is_cached_target(y):
        return step.LABELS in y
    return y is not None


def _is_array_data(x):
    if isinstance(x, dict):
        return all(_is_array_data(value) for value in x.values())
    if isinstance(x, (list, tuple)):
        return all(_is_array_data(value) for value in x)
    return hasattr(x, "shape") and hasattr(x, "dtype")


def sample(x, y):
    """`(inputs, targets)` as NumPy arrays to check: the arrays themselves,
    or a dataset's first batch; `(None, None)` when they cannot be read
    without consuming them (a generator)."""
    if y is None and is_dataset(x):
        element = first_element(x)
        if element is None:
            return None, None
        element = keras.tree.map_structure(lambda t: t.numpy(), element)
        if isinstance(element, tuple):
            return element[0], element[1] if len(element) > 1 else None
        return element, None
    if y is None and isinstance(x, keras.utils.PyDataset):
        batch = x[0]
        if isinstance(batch, tuple):
            return batch[0], batch[1] if len(batch) > 1 else None
        return batch, None
    if not _is_array_data(x):
        return None, None
    return x, y


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
    labels for a categorical one, non-finite values."""
    if labels is None or loss is None or classes is None:
        return
    labels = np.asarray(keras.ops.convert_to_numpy(labels))
    kind = loss_kind(loss)
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise ValueError(
            f"The labels contain {int(np.sum(~np.isfinite(labels)))} NaN or infinite value(s). "
            "Remove those examples, or mark them unlabeled with an integer such as -1 and "
            "SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)."
        )
    if kind == "sparse":
        if labels.ndim >= 1 and labels.shape[-1] == classes and labels.ndim >= 2 and _looks_one_hot(labels):
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
    elif kind == "categorical" and (labels.ndim < 2 or labels.shape[-1] != classes):
        raise ValueError(
            f"The hard-label loss {type(loss).__name__} takes one-hot labels of {classes} classes, but "
            f"the labels have shape {labels.shape}. Pass keras.utils.to_categorical(y, {classes}), or use "
            "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) with class indices."
        )


def _looks_one_hot(labels):
    return bool(np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(-1) == 1))


def _examples(values):
    unique = np.unique(values)
    shown = ", ".join(f"{v:g}" for v in unique[:5])
    return shown + (f" and {len(unique) - 5} other value(s)" if len(unique) > 5 else "")


def check_not_empty(x, owner):
    """Refuses arrays of no examples (Keras fails on them with a
    `StopIteration` or an `UnboundLocalError` after its callbacks began)."""
    if x is None:
        return
    if is_dataset(x):
        if first_element(x) is None:
            raise ValueError(
                f"{owner} got a dataset that yields no batch. Pass a dataset with at least one example; check "
                "the filtering, `take` or `skip` that built it."
            )
        return
    leaves = keras.tree.flatten(x)
    if leaves and hasattr(leaves[0], "shape") and len(leaves[0].shape) and leaves[0].shape[0] == 0:
        raise ValueError(
            f"{owner} got inputs with no examples (shape {tuple(leaves[0].shape)}). Pass at least one example; "
            "check the slicing or filtering that built them."
        )


def vocabulary_size(model):
    """The token vocabulary of a keras-hub model (its backbone's token
    embedding), else None."""
    embedding = getattr(getattr(model, "backbone", None), "token_embedding", None)
    size = getattr(embedding, "input_dim", None)
    return int(size) if size else None


def check_token_ids(x, models):
    """Refuses token ids outside `[0, vocabulary)` of any keras-hub model:
    an embedding lookup does not check them (JAX clamps or returns NaN
    rows, so the loss is NaN or silently wrong)."""
    if not isinstance(x, dict) or "token_ids" not in x:
        return
    ids = np.asarray(keras.ops.convert_to_numpy(x["token_ids"]))
    if ids.size == 0 or ids.dtype.kind not in "iu":
        return
    for model in models:
        size = vocabulary_size(model)
        if size is None:
            continue
        outside = (ids < 0) | (ids >= size)
        if np.any(outside):
            values = np.unique(ids[outside])[:5].tolist()
            raise ValueError(
                f"{int(np.sum(outside))} token id(s) are outside the vocabulary of {model.name!r} (0 to "
                f"{size - 1}): {values}. Tokenize with that model's own tokenizer (or preprocessor), or give the "
                "models a vocabulary that holds every id."
            )


def check_finite_inputs(x, what="inputs"):
    """Refuses floating inputs with NaN or infinite values (a ReLU hides them
    from the loss while they fill the weights with NaN)."""
    if x is None:
        return
    for index, array in enumerate(keras.tree.flatten(x)):
        array = np.asarray(keras.ops.convert_to_numpy(array))
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            where = np.argwhere(~np.isfinite(array))
            raise ValueError(
                f"The {what} contain {len(where)} NaN or infinite value(s) (first at index "
                f"{tuple(int(i) for i in where[0])}"
                f"{'' if index == 0 else f' of input {index}'}). Training on them fills the weights "
                "with NaN. Replace them (e.g. np.nan_to_num) or drop those examples."
            )


def check_cached_outputs(x, y, teachers, teacher_classes, loss, standardize=False, classes=None):
    """Checks cached teacher outputs in `fit` / `evaluate` data against a
    distiller's teachers and compiled distillation loss, before any step:
    their shape, their dtype (floating), their values (finite, top-k indices
    among the student's classes)."""
    if not uses_cached_outputs(x, y):
        return
    cached = x.element_spec[1][step.TEACHER_LOGITS] if y is None else y[step.TEACHER_LOGITS]
    if isinstance(cached, dict):
        k = cached[step.TOP_K_INDICES].shape[-1]
        check_top_k(
            k,
            argument="top_k",
            teacher_count=len(teachers),
            teacher_classes=teacher_classes,
            loss=loss,
            standardize=standardize,
        )
        indices = cached[step.TOP_K_INDICES]
        if y is not None and classes is not None and _is_array_data(indices):
            indices = np.asarray(indices)
            if indices.size and (indices.min() < 0 or indices.max() >= classes):
                raise ValueError(
                    f"The cached top-k indices run from {indices.min()} to {indices.max()}, but the "
                    f"student has {classes} classes (0 to {classes - 1}). Cache the outputs of a teacher "
                    "with the student's classes."
                )
        return
    dtype = keras.backend.standardize_dtype(cached.dtype)
    if not dtype.startswith(("float", "bfloat")):
        raise ValueError(
            f"The cached teacher logits have dtype {dtype}; logits are floating point. Pass what "
            "keras_distill.precompute_teacher_outputs returned (float32 or float16)."
        )
    if y is not None and _is_array_data(cached):
        array = np.asarray(cached)
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"The cached teacher logits contain {int(np.sum(~np.isfinite(array)))} NaN or infinite "
                "value(s) (float16 holds values up to 65504). Cache them in float32: "
                "precompute_teacher_outputs(teacher, x, dtype='float32')."
            )
    cached_shape = tuple(cached.shape)
    count = len(teachers)
    teacher_shape = output_shape(teachers[0])
    if teacher_shape is None:
        return
    expected = (None,) + ((count,) if count > 1 else ()) + tuple(teacher_shape[1:])
    if len(cached_shape) != len(expected) or any(
        e is not None and c is not None and c != e for c, e in zip(cached_shape, expected)
    ):
        raise ValueError(
            f"The cached teacher logits have shape {cached_shape}, but this "
            f"distiller's {count} teacher(s) give {expected} (None: any "
            "number of examples). Compute them with keras_distill."
            "precompute_teacher_outputs(distiller.teacher, x) for the same "
            "teacher(s), in the same order."
        )


def check_class_weight(x, y, class_weight):
    """`class_weight` with cached teacher outputs: Keras refuses it with a
    message about multi-output models; say what to do instead."""
    if class_weight is not None and uses_cached_outputs(x, y):
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


def check_separate_inputs(x, y):
    """With `separate_teacher_inputs=True`, array inputs (or a dataset's
    first batch) must be `{"student": ..., "teacher": ...}`."""
    inputs, _ = sample(x, y)
    if inputs is None:
        return
    if not isinstance(inputs, dict) or set(inputs) != {"student", "teacher"}:
        keys = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ValueError(
            "With separate_teacher_inputs=True the inputs must be a dict {'student': student_inputs, "
            f"'teacher': teacher_inputs}}, the same texts tokenized by each model's tokenizer. Received {keys}."
        )
