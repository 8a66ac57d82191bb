"""Quantized students: Keras' own `model.quantize`, with the accuracy that
post-training quantization loses won back by distillation.

`quantize_student(student, teacher, x, y, mode="int8", method=...)` returns
a new, quantized Keras model and never changes `student`:

- `"ptq"`: post-training quantization of a copy of the student;
- `"lora"`: the same, then LoRA adapters on every quantized layer trained by
  a `keras_distill.Distiller` against the float teacher (QLoRA: the int8 /
  int4 kernels stay frozen; the adapters, biases and layers Keras does not
  quantize train), then merged into the quantized kernels;
- `"qat"`: quantization-aware distillation: a copy of the student whose
  `Dense` kernels and inputs are fake-quantized in the forward pass
  (symmetric per output channel for kernels, per example for inputs, a
  straight-through estimator for the gradient), distilled from the teacher,
  then quantized with the same per-channel scheme.

Keras quantizes `Dense`, `EinsumDense` and `Embedding` layers; other layers
(convolutions, normalization) keep float32 weights, and `quantize_student`
warns which.
"""

import os
import tempfile
import warnings

import keras
from keras import ops

from keras_distill import _compat
from keras_distill._training.checks.data import is_dataset
from keras_distill._validate import check_choice
from keras_distill._validate import check_int
from keras_distill._validate import check_number
from keras_distill.distillers.distiller import Distiller

MODES = ("int8", "int4")
METHODS = ("ptq", "lora", "qat")
QUANTIZABLE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)
# Symmetric ranges of Keras' abs-max quantizers.
_KERNEL_RANGES = {"int8": 127.0, "int4": 7.0}
_INPUT_RANGE = 127.0


def quantizable_layers(model):
    """Splits the layers that hold weights into those Keras can quantize
    (`Dense`, `EinsumDense`, `Embedding`) and the others.

    Returns:
        `(quantizable, other)`: two lists of layer names.
    """
    quantizable, other = [], []
    for layer in _leaf_layers(model):
        if not layer.weights:
            continue
        (quantizable if isinstance(layer, QUANTIZABLE) else other).append(layer.name)
    return quantizable, other


def quantize_student(
    student,
    teacher=None,
    x=None,
    y=None,
    *,
    mode="int8",
    method="lora",
    epochs=2,
    rank=8,
    alpha=0.5,
    temperature=4.0,
    learning_rate=1e-3,
    batch_size=128,
    loss=None,
    validation_data=None,
    verbose=0,
):
    """A quantized copy of `student`, recovered by distillation from
    `teacher` unless `method="ptq"`.

    Args:
        student: a built Keras model (functional or `Sequential` for
            `method="qat"`), left unchanged.
        teacher: the float teacher; unused for `"ptq"`.
        x, y: training inputs and integer labels (or a dataset of
            `(x, y)`); unused for `"ptq"`.
        mode: `"int8"` or `"int4"`.
        method: `"ptq"`, `"lora"` or `"qat"` (see the module's docstring).
        epochs: epochs of distillation for `"lora"` and `"qat"`.
        rank: LoRA rank for `"lora"`.
        alpha, temperature: the `Distiller`'s weight of the hard-label loss
            and its temperature.
        learning_rate: Adam's learning rate. The recovery is a fine-tune:
            `1e-3` for adapters, lower (e.g. `1e-4`) suits `"qat"`.
        batch_size: for array inputs.
        loss: the hard-label loss; sparse categorical cross-entropy on
            logits by default.
        validation_data: passed to `fit`.
        verbose: passed to `fit`.

    Returns:
        A new quantized `keras.Model` with the student's inputs and outputs,
        ready for `save`, `keras_distill.export.export` or `model.export`.
    """
    mode = check_choice(mode, "mode", MODES)
    method = check_choice(method, "method", METHODS)
    _check_model(student, "student")
    quantizable, other = quantizable_layers(student)
    if not quantizable:
        raise ValueError(
            f"Keras cannot quantize the student {student.name!r}: none of its layers with weights ({other}) is a "
            "Dense, EinsumDense or Embedding layer, the only layers `model.quantize` quantizes (Keras 3.15). "
            "Give the student a Dense head, or keep it in float32."
        )
    if other:
        warnings.warn(
            f"Keras quantizes only Dense, EinsumDense and Embedding layers: the student's {other} keep float32 "
            f"weights (and train during recovery); {quantizable} are quantized to {mode}.",
            stacklevel=2,
        )
    if method != "ptq":
        if teacher is None or x is None:
            raise ValueError(
                f"method={method!r} distills from the teacher: pass `teacher` and the training data `x`, `y` "
                "(or method='ptq' for post-training quantization alone)."
            )
        _check_model(teacher, "teacher")
        epochs = check_int(epochs, "epochs", example=2, at_least=1)
        batch_size = check_int(batch_size, "batch_size", example=128, at_least=1)
        learning_rate = check_number(learning_rate, "learning_rate", example=1e-3, above=0.0)
    if method == "ptq":
        return _quantized_copy(student, mode)
    if method == "lora":
        rank = check_int(rank, "rank", example=8, at_least=1)
        model = with_adapters(student, mode, rank)
        _distill(
            model, teacher, x, y, epochs, alpha, temperature, learning_rate, batch_size, loss, validation_data, verbose
        )
        return _merged(model, student, mode)
    model = _fake_quantized_copy(student, mode)
    _distill(
        model, teacher, x, y, epochs, alpha, temperature, learning_rate, batch_size, loss, validation_data, verbose
    )
    final = _copy(student)
    final.set_weights(model.get_weights())
    _quantize(final, mode, _per_channel_config(mode))
    return final


def with_adapters(student, mode, rank):
    """A quantized copy of `student` with LoRA adapters of `rank` on every
    quantized layer: its quantized kernels are not trainable, its adapters,
    biases and float layers are."""
    model = _quantized_copy(student, mode)
    for layer in _leaf_layers(model):
        if isinstance(layer, QUANTIZABLE) and layer.quantization_mode:
            layer.enable_lora(rank)
    return model


def _check_model(model, role):
    if not isinstance(model, keras.Model):
        raise TypeError(f"`{role}` must be a keras.Model; received {type(model).__name__}.")
    if not model.built:
        raise ValueError(f"The {role} {model.name!r} is not built: call it once on a batch (or build it) first.")


def _leaf_layers(model):
    """The layers inside `model` that hold no layers of their own."""
    layers = _compat.all_layers(model)[1:]
    return [layer for layer in layers if len(_compat.all_layers(layer)) == 1]


def _copy(model):
    """A copy with the same weights, sharing nothing with `model`
    (`clone_model` rebuilds subclassed models from their config itself)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _quantized_copy(model, mode):
    copy = _copy(model)
    _quantize(copy, mode)
    return copy


def _quantize(model, mode, config=None):
    with warnings.catch_warnings():
        # Keras warns once per layer without weights ("InputLayer does not
        # have a `quantize` method"): noise, since `quantize_student` names
        # the layers that stay float itself.
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method.*")
        if config is None:
            model.quantize(mode)
        else:
            model.quantize(config=config)


def _per_channel_config(mode):
    if mode == "int4":
        return keras.quantizers.Int4QuantizationConfig(block_size=None)
    return keras.quantizers.Int8QuantizationConfig()


def _distill(
    model, teacher, x, y, epochs, alpha, temperature, learning_rate, batch_size, loss, validation_data, verbose
):
    distiller = Distiller(student=model, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        alpha=alpha,
        temperature=temperature,
    )
    fit = dict(epochs=epochs, verbose=verbose, validation_data=validation_data)
    if not is_dataset(x):
        fit["batch_size"] = batch_size
    distiller.fit(x, y, **fit)


def _merged(model, student, mode):
    """The adapters merged into the quantized kernels: Keras merges them when
    it saves, so the merged model is the saved file loaded back, without
    adapters."""
    final = _quantized_copy(student, mode)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "merged.weights.h5")
        model.save_weights(path)
        final.load_weights(path)
    return final


@keras.saving.register_keras_serializable(package="keras_distill")
class FakeQuantDense(keras.layers.Dense):
    """A `Dense` layer whose kernel (symmetric, per output channel) and inputs
    (per example, int8) are rounded as the quantized layer will round them,
    with a straight-through gradient. Used by `quantize_student(...,
    method="qat")` for training only."""

    def __init__(self, *args, quantized_range=127.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.quantized_range = float(quantized_range)

    def call(self, inputs, training=None):
        kernel = _fake_quantize(self.kernel, axis=0, limit=self.quantized_range)
        inputs = _fake_quantize(inputs, axis=-1, limit=_INPUT_RANGE)
        outputs = ops.matmul(inputs, kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "quantized_range": self.quantized_range}


def _fake_quantize(x, axis, limit):
    scale = ops.divide(limit, ops.add(ops.max(ops.abs(x), axis=axis, keepdims=True), keras.backend.epsilon()))
    rounded = ops.divide(ops.clip(ops.round(ops.multiply(x, scale)), -limit, limit), scale)
    # Straight-through: the forward pass sees the rounded values, the
    # backward pass the identity.
    return ops.add(x, ops.stop_gradient(ops.subtract(rounded, x)))


def _fake_quantized_copy(model, mode):
    limit = _KERNEL_RANGES[mode]

    def clone(layer):
        if type(layer) is keras.layers.Dense:
            return FakeQuantDense.from_config({**layer.get_config(), "quantized_range": limit})
        return layer.__class__.from_config(layer.get_config())

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except ValueError as error:
        raise ValueError(
            f"method='qat' rebuilds the student {model.name!r} with fake-quantized Dense layers, which needs a "
            f"functional or Sequential model ({error}). Use method='lora' instead."
        ) from error
    copy.set_weights(model.get_weights())
    return copy
