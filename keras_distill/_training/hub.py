"""Raw data for keras-hub task models: run the student's preprocessor.

keras-hub task models (`GPT2CausalLM`, `GemmaCausalLM`, ...) carry a
preprocessor that turns raw strings into `{"token_ids", "padding_mask"}`,
labels and a label mask, and apply it in `fit` / `evaluate` / `predict`
through `tf.data`. A distiller wrapping such a student does the same, so
teacher and student see the same tokens.
"""

import numpy as np

from keras_distill._training.checks.data import is_dataset


def preprocessor_of(model):
    """A keras-hub task's preprocessor, or None."""
    return getattr(model, "preprocessor", None)


def needs_preprocessing(model, x):
    """Whether `x` is raw data (strings) for `model`'s preprocessor."""
    if preprocessor_of(model) is None or x is None or isinstance(x, dict):
        return False
    if is_dataset(x):
        spec = x.element_spec
        first = spec[0] if isinstance(spec, tuple) else spec
        return getattr(first, "dtype", None) is not None and first.dtype.name == "string"
    array = np.asarray(x) if isinstance(x, (list, tuple)) else x
    return getattr(array, "dtype", None) is not None and array.dtype.kind in "USO"


def preprocess(model, x, y=None, sample_weight=None, *, batch_size=None, shuffle=False):
    """A `tf.data.Dataset` of the preprocessed batches of raw `x`."""
    import tensorflow as tf

    preprocessor = preprocessor_of(model)
    if is_dataset(x):
        dataset = x
    else:
        data = tuple(part for part in (x, y, sample_weight) if part is not None)
        if sample_weight is not None and y is None:
            raise ValueError("Raw strings with `sample_weight` need labels `y` too.")
        dataset = tf.data.Dataset.from_tensor_slices(data if len(data) > 1 else data[0])
        if shuffle:
            dataset = dataset.shuffle(len(x), reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size or 32)
    return dataset.map(lambda *args: preprocessor(*args), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


def preprocess_arguments(student, x, y, kwargs, *, shuffle=False):
    """`(x, y)` for `fit` / `evaluate`: raw strings for a keras-hub student
    become its preprocessor's batches (taking `sample_weight` and
    `batch_size` out of `kwargs`); other data is returned as it is."""
    if not needs_preprocessing(student, x):
        return x, y
    if "validation_split" in kwargs:
        raise ValueError(
            "validation_split does not work with raw strings for a keras-hub "
            "student (they become a tf.data.Dataset). Pass validation_data."
        )
    dataset = preprocess(
        student,
        x,
        y,
        kwargs.pop("sample_weight", None),
        batch_size=kwargs.pop("batch_size", None),
        shuffle=shuffle,
    )
    return dataset, None
