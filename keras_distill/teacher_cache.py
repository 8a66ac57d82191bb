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

from keras_distill import _compat
from keras_distill._training import outputs
from keras_distill._training import step
from keras_distill._training.checks import data as data_checks
from keras_distill._training.checks import models as checks
from keras_distill._training.guards import guarded
from keras_distill._training.step import LABELS
from keras_distill._training.step import TEACHER_LOGITS
from keras_distill._training.step import TOP_K_INDICES
from keras_distill._training.step import TOP_K_LOG_PROBS
from keras_distill._training.step import as_logits
from keras_distill._validate import check_choice
from keras_distill._validate import check_int
from keras_distill.losses.top_k_divergence import top_k_teacher

STORAGE_DTYPES = ("float32", "float16")
FLOAT16_MAX = 65504.0


def precompute_teacher_outputs(
    teacher,
    x,
    *,
    batch_size=256,
    dtype="float32",
    teacher_output_kind="auto",
    top_k=None,
    directory=None,
    shard_size=65536,
    overwrite=False,
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
        teacher_output_kind: `"auto"`, `"logits"` or `"probabilities"`, as in
            `keras_distill.Distiller`: probabilities are stored as their
            log, which is the same target for every temperature.
        top_k: `None` (all logits) or an int k: keep only the teacher's k
            most likely classes per example (or per token), as a dict
            `{"top_k_indices": int32, "top_k_log_probs": dtype}` of arrays
            of shape `(..., k)`, log-probabilities at temperature 1. For
            large vocabularies; the distiller then uses
            `keras_distill.losses.top_k_kl_divergence`. One teacher only.
        directory: `None` (return the outputs), or a directory to write
            them to, in shards of `shard_size` examples of plain `.npy`
            files with a `manifest.json` (teacher and data fingerprints, k,
            dtype, example count). Interrupted, the same call resumes: only
            the shards not yet complete are computed. Train from it with
            `keras_distill.CachedTeacherOutputs(directory, x, y)`, which
            streams one shard at a time. Arrays only (a dataset has no
            fingerprint to check the cache against).
        shard_size: Examples per shard, with `directory`.
        overwrite: With `directory`, replace a cache written with other
            settings (teacher, data, k, dtype, shard size) instead of
            refusing it.

    Returns:
        With `directory`, the directory. For arrays, a NumPy array of
        logits of shape `(n, num_classes)`, or
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
    teachers = checks.as_teacher_list(teacher)
    for model in teachers:
        structure = outputs.of_model(model)
        if structure not in (None, step.SINGLE):
            raise ValueError(
                f"precompute_teacher_outputs caches one output per example; the teacher {model.name!r} returns "
                f"a {structure.kind} of outputs {list(structure.names)}. Distill a "
                "model with several outputs from the live teacher (Distiller with a loss per output)."
            )
    check_choice(dtype, "dtype", STORAGE_DTYPES, example="float16", note="float16 halves the cache's memory.")
    check_int(batch_size, "batch_size", example=256, at_least=1)
    shape = checks.output_shape(teachers[0])
    checks.check_top_k(top_k, argument="top_k", teacher_count=len(teachers), classes=shape and shape[-1])
    kinds = [checks.output_kind(model, teacher_output_kind) for model in teachers]

    def logits_of(inputs, predict):
        outputs = [
            keras.ops.convert_to_numpy(as_logits(np.asarray(predict(model, inputs)), kind))
            for model, kind in zip(teachers, kinds)
        ]
        for model, output in zip(teachers, outputs):
            _check_storable(output, dtype, model.name)
        if top_k is not None:
            return _top_k(outputs[0], top_k, dtype)
        stacked = outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=1)
        return stacked.astype(dtype)

    if data_checks.is_dataset(x):
        if directory is not None:
            raise ValueError(
                "precompute_teacher_outputs(..., directory=...) caches arrays: their fingerprint is what a later "
                "CachedTeacherOutputs checks the cache against. Pass the inputs as arrays (or np.load(..., "
                "mmap_mode='r') arrays, which stay on disk), or leave out `directory`."
            )
        return _cache_dataset(x, logits_of)
    # Every input, not a sample: the teacher reads every one of them here.
    data_checks.check_finite_inputs(x)
    data_checks.check_not_empty(data_checks.Sample(x), "precompute_teacher_outputs")
    if directory is not None:
        from keras_distill import cache_directory

        cache_directory.write(
            str(directory),
            x,
            lambda inputs: logits_of(inputs, lambda model, chunk: _predict(model, chunk, batch_size)),
            fingerprint=cache_directory.teacher_fingerprint(teachers),
            top_k=top_k,
            dtype=dtype,
            shard_size=shard_size,
            overwrite=overwrite,
        )
        return str(directory)
    return logits_of(x, lambda model, inputs: _predict(model, inputs, batch_size))


def _predict(model, inputs, batch_size):
    # An interrupted predict (Ctrl-C) leaves the teacher's variables empty
    # on JAX; they are put back.
    with guarded(model) as guard:
        return model.predict(inputs, **guard({"batch_size": batch_size, "verbose": 0}))


def _check_storable(logits, dtype, name):
    """Refuses logits that are not finite, or that float16 cannot hold."""
    if not np.all(np.isfinite(logits)):
        raise ValueError(
            f"The teacher {name!r} returned {int(np.sum(~np.isfinite(logits)))} NaN or infinite output(s) "
            "on these inputs; there is nothing to distill from them. Check the inputs for NaN "
            "(np.isnan(x).any()) and the teacher's weights."
        )
    largest = float(np.max(np.abs(logits))) if logits.size else 0.0
    if dtype == "float16" and largest > FLOAT16_MAX:
        raise ValueError(
            f"The teacher {name!r} returned logits up to {largest:.3g} in magnitude; float16 holds values "
            f"up to {FLOAT16_MAX:g}, so they would be stored as inf. Cache them with dtype='float32'."
        )


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


def _top_k(logits, k, dtype):
    checks.check_top_k(k, argument="top_k", classes=logits.shape[-1])
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


def _random_operations(dataset):
    """Names of the shuffling and random ops in a tf.data pipeline."""
    return sorted(op for op in _compat.dataset_operations(dataset) if "Shuffle" in op or "Random" in op)


def _cache_dataset(dataset, logits_of):
    import tensorflow as tf

    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "Cannot cache teacher outputs for an infinite dataset (one that repeats without end): the "
            "teacher would never finish. Cache the dataset before .repeat(), e.g. "
            "precompute_teacher_outputs(teacher, dataset), then .repeat() the result."
        )
    generators = sorted(op for op in _compat.dataset_operations(dataset) if "Generator" in op or "PyFunc" in op)
    if generators:
        raise ValueError(
            "Cannot cache teacher outputs for this dataset: it is built from Python code "
            f"({', '.join(generators)}, e.g. Dataset.from_generator), which may yield its examples in "
            "another order each epoch, and the cached outputs would no longer match their inputs. Cache "
            "the inputs as arrays (np.stack of one pass), or distill with the live teacher."
        )
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
            f"The dataset yields tuples of {len(spec)} elements; expected x, (x,), (x, y) or (x, y, sample_weight)."
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
    tables = keras.tree.map_structure(lambda *chunks: tf.constant(np.concatenate(chunks, axis=0)), *batches)
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
