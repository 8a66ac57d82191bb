"""Projections and FitNets regressors: layers that map a student feature to
the shape of the teacher feature it is compared with."""

import keras

from keras_distill.losses.base import describe
from keras_distill.losses.base import resolve_data_format

_CONVOLUTIONS = {3: keras.layers.Conv1D, 4: keras.layers.Conv2D, 5: keras.layers.Conv3D}


def build_regressor(student_shape, teacher_shape, *, data_format=None, name=None):
    """A layer mapping features of `student_shape` to `teacher_shape`.

    Vectors, and sequences of unknown length `(batch, None, width)` such
    as transformer hidden states, get a `Dense` layer (per token); feature
    maps a convolution without
    activation: 1x1 when the spatial sizes match, otherwise a "valid"
    kernel of size `student - teacher + 1` per axis, which shrinks the
    student's map to the teacher's (Romero et al., section 2.2).

    Args:
        student_shape: Shape of the guided layer's output, batch first.
        teacher_shape: Shape of the hint layer's output, batch first.
        data_format: Defaults to `keras.config.image_data_format()`.
        name: Name of the layer.

    Returns:
        An unbuilt `keras.layers.Layer`.
    """
    student_shape, teacher_shape = tuple(student_shape), tuple(teacher_shape)
    if len(student_shape) != len(teacher_shape):
        raise _error(student_shape, teacher_shape, "their ranks differ")
    if len(student_shape) == 2:
        return keras.layers.Dense(teacher_shape[-1], name=name)
    if len(student_shape) == 3 and student_shape[1] is None and teacher_shape[1] is None:
        # Sequences of unknown length, e.g. transformer hidden states
        # (batch, tokens, width): a linear map per token, as in TinyBERT.
        return keras.layers.Dense(teacher_shape[-1], name=name)
    if len(student_shape) not in _CONVOLUTIONS:
        raise _error(student_shape, teacher_shape, "they are not vectors or 1D-3D maps")
    data_format = resolve_data_format(data_format)
    if data_format == "channels_last":
        student_size, teacher_size = student_shape[1:-1], teacher_shape[1:-1]
        channels = teacher_shape[-1]
    else:
        student_size, teacher_size = student_shape[2:], teacher_shape[2:]
        channels = teacher_shape[1]
    if any(s is None or t is None or s < t for s, t in zip(student_size, teacher_size)):
        raise _error(
            student_shape,
            teacher_shape,
            "the student's map is smaller than (or not as statically known as) "
            "the teacher's, and a convolution can only shrink it",
        )
    kernel = tuple(s - t + 1 for s, t in zip(student_size, teacher_size))
    return _CONVOLUTIONS[len(student_shape)](channels, kernel, padding="valid", data_format=data_format, name=name)


def _error(student_shape, teacher_shape, reason):
    return ValueError(
        "Cannot build a regressor from the student's guided feature "
        f"{describe(student_shape)} to the teacher's hint "
        f"{describe(teacher_shape)}: {reason}. Tap a guided layer whose map "
        "is at least as large as the hint's, or pass your own layer as "
        "`regressor=` (it must output the hint's shape)."
    )


def pair_shapes(pairs, teacher_extractor, student_extractor):
    """For each `(teacher_spec, student_spec)` pair, the static feature shapes
    `(teacher, student)`: a tuple for a single layer, a list of tuples for
    several."""

    def shape(extractor, spec):
        outputs = extractor.output
        if isinstance(spec, str):
            return tuple(outputs[spec].shape)
        return [tuple(outputs[name].shape) for name in spec]

    return [(shape(teacher_extractor, teacher), shape(student_extractor, student)) for teacher, student in pairs]
