"""Teacher outputs computed once, for distillation without a live teacher.

Without random augmentation the teacher's outputs on a training set are the
same every epoch. `precompute_teacher_outputs` runs the teacher once and
returns its logits; `with_teacher_outputs` packs them beside the labels, so
that `fit` slices, shuffles and batches them with the inputs, and
`keras_distill.Distiller.compute_loss` uses them instead of running the
teacher. Only the logits are kept (optionally in float16): one row of
`num_classes` numbers per example.
"""

import keras
import numpy as np

from keras_distill.distillers import model_checks
from keras_distill.distillers import teachers as teachers_module
from keras_distill.losses.top_k import top_k_teacher

LABELS = "labels"
TEACHER_LOGITS = "teacher_logits"
TOP_K_INDICES = "top_k_indices"
TOP_K_LOG_PROBS = "top_k_log_probs"
STORAGE_DTYPES = ("float32", "float16")


def precompute_teacher_outputs(
    teacher, x, *, batch_size=256, dtype="float32", teacher_outputs="auto", top_k=None
):
    """Runs the teacher(s) once over `x` and returns their logits.

    Caching is exact when the inputs the student sees are the inputs the
    teacher saw: no random augmentation or shuffling before the cache is
    built. Shuffling the cached data afterwards is fine, since the logits
    travel with their examples (`fit(shuffle=True)` on arrays, or
    `dataset.unbatch().shuffle(n).batch(b)` on the returned dataset).
    Augmentation layers inside the student are fine too: the live teacher
    never sees them either.

    Args:
        teacher: `keras.Model`, or a list of them (a `Distiller` with
            several teachers).
        x: NumPy array (or dict / list of arrays) of inputs, or a batched
            `tf.data.Dataset` yielding `x`, `(x,)`, `(x, y)` or
            `(x, y, sample_weight)`. A dataset whose pipeline shuffles or
            draws random numbers is refused.
        batch_size: int, batch size of the teacher's forward passes on
            arrays (a dataset keeps its own batches).
        dtype: `"float32"` (default) or `"float16"`, the storage type.
            float16 halves the memory; the distiller casts back to float32.
        teacher_outputs: `"auto"`, `"logits"` or `"probabilities"`, as in
            `keras_distill.Distiller`: probabilities are stored as their
            log, which is the same target for every temperature.
        top_k: `None` (all logits) or an int k: keep only the teacher's k
            most likely classes per example (or per token), as a dict
            `{"top_k_indices": int32, "top_k_log_probs": dtype}` of arrays
            of shape `(..., k)`, log-probabilities at temperature 1. For
            large vocabularies; the distiller then uses
            `keras_distill.losses.top_k_kl_divergence`. One teacher only.

    Returns:
        For arrays, a NumPy array of logits of shape `(n, num_classes)`, or
        `(n, num_teachers, num_classes)` for several teachers; pass it to
        `fit` through `with_teacher_outputs(y, logits)`. For a dataset, a
        dataset yielding `(x, with_teacher_outputs(y, logits)[,
        sample_weight])`, ready for `fit`.

    Examples:

    ```python
    logits = keras_distill.precompute_teacher_outputs(teacher, x_train, dtype="float16")
    distiller.fit(x_train, keras_distill.with_teacher_outputs(y_train, logits), epochs=10)
    ```
    """
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError("`teacher` is an empty list. Pass a keras.Model or a list of them.")
    for index, model in enumerate(teachers):
        model_checks.check_model(model, "teacher" if len(teachers) == 1 else f"teacher[{index}]")
    if dtype not in STORAGE_DTYPES:
        raise ValueError(
            f"`dtype` must be one of {STORAGE_DTYPES}. Received: dtype={dtype!r}. "
            "Use dtype='float16' to halve the cache's memory."
        )
    teachers_module.validate_teacher_outputs(teacher_outputs)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}.")
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1 or len(teachers) > 1
    ):
        raise ValueError(
            "`top_k` must be a positive int, with one teacher. Received: "
            f"top_k={top_k!r} for {len(teachers)} teacher(s). Use e.g. top_k=64."
        )
    kinds = [teachers_module.output_kind(model, teacher_outputs) for model in teachers]

    def logits_of(inputs, predict):
        outputs = [_as_logits(predict(model, inputs), kind) for model, kind in zip(teachers, kinds)]
        if top_k is not None:
            return _top_k(outputs[0], top_k, dtype)
        stacked = outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=1)
        return stacked.astype(dtype)

    if is_dataset(x):
        return _cache_dataset(x, logits_of)
    return logits_of(x, lambda model, inputs: model.predict(inputs, batch_size=batch_size, verbose=0))


def with_teacher_outputs(y, teacher_logits):
    """Packs labels and cached teacher logits into one target for `fit`.

    Args:
        y: Labels, as `fit` takes them, or `None` to distill from the
            teacher alone (compile with `loss=None, alpha=0`).
        teacher_logits: What `precompute_teacher_outputs` returned (an
            array, or the top-k dict), one row per example of `y`.

    Returns:
        A dict `{"labels": y, "teacher_logits": teacher_logits}` (without
        `"labels"` when `y` is None), sliced by `fit` like any target.
    """
    if teacher_logits is None:
        raise ValueError(
            "`teacher_logits` is None. Pass the array that "
            "keras_distill.precompute_teacher_outputs(teacher, x) returned."
        )
    if y is None:
        return {TEACHER_LOGITS: teacher_logits}
    count, cached = _length(y), _length(teacher_logits)
    if count is not None and cached is not None and count != cached:
        raise ValueError(
            f"`y` has {count} examples but `teacher_logits` has {cached}. "
            "Compute the teacher outputs on the same inputs, in the same "
            "order, as the labels: precompute_teacher_outputs(teacher, x)."
        )
    return {LABELS: y, TEACHER_LOGITS: teacher_logits}


def is_cached_target(y):
    """Whether `y` came from `with_teacher_outputs`."""
    return isinstance(y, dict) and TEACHER_LOGITS in y and set(y) <= {LABELS, TEACHER_LOGITS}


def split_target(y):
    """`(labels, cached_teacher_logits)`; the second is None for plain labels."""
    if is_cached_target(y):
        return y.get(LABELS), y[TEACHER_LOGITS]
    return y, None


def uses_cached_outputs(x, y=None):
    """Whether the data handed to `fit` / `evaluate` carries cached logits."""
    if y is not None:
        return is_cached_target(y)
    if is_dataset(x):
        spec = x.element_spec
        return isinstance(spec, tuple) and len(spec) > 1 and is_cached_target(spec[1])
    return False


def check_cached_outputs(x, y, teachers, teacher_classes, distillation_loss):
    """Checks cached teacher outputs in `fit` / `evaluate` data against a
    distiller's teachers and loss, before any step runs."""
    if not uses_cached_outputs(x, y):
        return
    cached = (
        x.element_spec[1][TEACHER_LOGITS]
        if y is None
        else y[TEACHER_LOGITS]
    )
    if isinstance(cached, dict):
        if len(teachers) > 1 or teacher_classes is not None:
            raise ValueError(
                "Cached top-k teacher outputs need one teacher over the "
                "student's classes; this distiller has "
                f"{len(teachers)} teacher(s), teacher_classes="
                f"{teacher_classes!r}. Cache the full logits (top_k=None)."
            )
        if teachers_module.top_k_needs_kl(0, distillation_loss):
            raise ValueError(
                "Cached top-k teacher outputs are distilled with the top-k "
                "KL divergence only; this distiller was compiled with "
                f"{type(distillation_loss).__name__}. Compile with "
                "distillation_loss='kl', or cache full logits."
            )
        return
    cached_shape = tuple(cached.shape)
    count = len(teachers)
    teacher_shape = model_checks.output_shape(teachers[0])
    expected = None
    if teacher_shape is not None:
        expected = (None,) + ((count,) if count > 1 else ()) + tuple(teacher_shape[1:])
    if expected is not None and (
        len(cached_shape) != len(expected)
        or any(e is not None and c is not None and c != e for c, e in zip(cached_shape, expected))
    ):
        raise ValueError(
            f"The cached teacher logits have shape {cached_shape}, but this "
            f"distiller's {count} teacher(s) give {expected} (None: any "
            "number of examples). Compute them with keras_distill."
            "precompute_teacher_outputs(distiller.teacher, x) for the same "
            "teacher(s), in the same order."
        )


def _as_logits(outputs, kind):
    outputs = np.asarray(outputs, dtype="float32")
    if kind == "probabilities":
        outputs = np.log(np.maximum(outputs, teachers_module.LOG_FLOOR))
    return outputs


def _top_k(logits, k, dtype):
    if k > logits.shape[-1]:
        raise ValueError(
            f"`top_k`={k} exceeds the teacher's {logits.shape[-1]} classes. "
            f"Use top_k <= {logits.shape[-1]}."
        )
    indices, log_probs = top_k_teacher(logits, k)
    return {
        TOP_K_INDICES: keras.ops.convert_to_numpy(indices).astype("int32"),
        TOP_K_LOG_PROBS: keras.ops.convert_to_numpy(log_probs).astype(dtype),
    }


def _length(array):
    if isinstance(array, dict):
        array = array.get(TOP_K_INDICES)
    shape = getattr(array, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) and shape[0] is not None else None


def is_dataset(x):
    module = type(x).__module__ or ""
    return module.startswith("tensorflow") and hasattr(x, "element_spec")


def _random_operations(dataset):
    """Names of the shuffling and random ops in a tf.data pipeline."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(dataset._as_serialized_graph().numpy())
    operations = {node.op for node in graph.node}
    for function in graph.library.function:
        operations |= {node.op for node in function.node_def}
    return sorted(op for op in operations if "Shuffle" in op or "Random" in op)


def _cache_dataset(dataset, logits_of):
    import tensorflow as tf

    random_ops = _random_operations(dataset)
    if random_ops:
        raise ValueError(
            "Cannot cache teacher outputs for this dataset: its pipeline "
            f"shuffles or draws random numbers ({', '.join(random_ops)}), so "
            "the inputs of a later epoch differ from those the teacher saw. "
            "Build the dataset without shuffle() and random augmentation, "
            "cache, then shuffle the result: "
            "cached.unbatch().shuffle(n).batch(batch_size). For random "
            "augmentation, distill with the live teacher."
        )
    spec = dataset.element_spec
    packed = isinstance(spec, tuple)
    if packed and len(spec) > 3:
        raise ValueError(
            f"The dataset yields tuples of {len(spec)} elements; expected x, "
            "(x,), (x, y) or (x, y, sample_weight)."
        )

    def inputs_of(element):
        return element[0] if packed else element

    batches = [
        logits_of(inputs_of(element), lambda model, inputs: keras.ops.convert_to_numpy(model.predict_on_batch(inputs)))
        for element in dataset.as_numpy_iterator()
    ]
    if not batches:
        raise ValueError("The dataset is empty: there is nothing to cache.")
    sizes = np.array([_length(batch) for batch in batches], dtype="int64")
    starts = tf.constant(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    sizes = tf.constant(sizes)
    tables = keras.tree.map_structure(
        lambda *chunks: tf.constant(np.concatenate(chunks, axis=0)), *batches
    )
    cached = tf.data.Dataset.range(len(batches)).map(
        lambda index: keras.tree.map_structure(
            lambda table: table[starts[index] : starts[index] + sizes[index]], tables
        )
    )

    def pack(element, logits):
        if not packed:
            return element, with_teacher_outputs(None, logits)
        rest = element[2:]
        labels = element[1] if len(element) > 1 else None
        return (element[0], with_teacher_outputs(labels, logits)) + tuple(rest)

    return tf.data.Dataset.zip((dataset, cached)).map(pack)
