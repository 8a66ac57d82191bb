"""Attention transfer (Zagoruyko & Komodakis, 2017)."""

import keras
from keras import ops

from keras_distill._validate import check_number
from keras_distill.losses.base import FeatureLoss
from keras_distill.losses.base import describe
from keras_distill.losses.base import resolve_data_format

# F.normalize's floor in the authors' code, for an all-zero map.
_EPSILON = 1e-12


def attention_map(features, *, p=2, data_format=None):
    """The normalized spatial attention map of a feature map, per example.

    `Q = mean over channels of |F|^p`, flattened over the spatial axes and
    divided by its L2 norm, as in the authors' code.

    Args:
        features: Tensor `(batch, *spatial, channels)` (channels_last) or
            `(batch, channels, *spatial)` (channels_first).
        p: Exponent of the activations. Defaults to 2.
        data_format: Defaults to `keras.config.image_data_format()`.

    Returns:
        A float32 tensor of shape `(batch, number of positions)` with unit
        L2 norm per example.
    """
    data_format = resolve_data_format(data_format)
    features = ops.cast(features, "float32")
    channel_axis = -1 if data_format == "channels_last" else 1
    attention = ops.mean(ops.power(ops.abs(features), p), axis=channel_axis)
    attention = ops.reshape(attention, (ops.shape(attention)[0], -1))
    norm = ops.sqrt(ops.sum(ops.square(attention), axis=-1, keepdims=True))
    return attention / ops.maximum(norm, _EPSILON)


def attention_transfer(teacher_features, student_features, *, p=2, data_format=None):
    """Mean squared difference of the two attention maps, per example.

    Args:
        teacher_features: Tensor, a teacher feature map.
        student_features: Tensor, a student feature map of the same spatial
            size (the channel counts may differ).
        p: Exponent of the activations. Defaults to 2.
        data_format: Defaults to `keras.config.image_data_format()`.

    Returns:
        A float32 tensor of shape `(batch,)`.
    """
    teacher = attention_map(teacher_features, p=p, data_format=data_format)
    student = attention_map(student_features, p=p, data_format=data_format)
    return ops.mean(ops.square(teacher - student), axis=-1)


@keras.saving.register_keras_serializable(package="keras_distill")
class AttentionTransfer(FeatureLoss):
    """Activation-based attention transfer between feature maps.

    Compares the L2-normalized spatial attention maps (mean over channels of
    `|F|^p`) of a teacher and a student feature map of the same spatial
    size; the channel counts may differ. The paper's weight `beta / 2`
    (1e3 / 2 in its experiments) is the distiller's `feature_weight`.

    Args:
        p: Exponent of the activations. Defaults to 2.
        data_format: Defaults to `keras.config.image_data_format()`.
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Reference:
        - [Zagoruyko & Komodakis, 2017](https://arxiv.org/abs/1612.03928)
    """

    def __init__(
        self,
        p=2,
        data_format=None,
        reduction="sum_over_batch_size",
        name="attention_transfer",
        dtype=None,
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        check_number(p, "p", example=2, above=0)
        self.p = p
        self.data_format = resolve_data_format(data_format)

    def call(self, y_true, y_pred):
        return attention_transfer(y_true, y_pred, p=self.p, data_format=self.data_format)

    def check_shapes(self, teacher_shape, student_shape):
        spatial = slice(1, -1) if self.data_format == "channels_last" else slice(2, None)
        teacher_size = tuple(teacher_shape)[spatial]
        student_size = tuple(student_shape)[spatial]
        if len(teacher_shape) < 3 or teacher_size != student_size:
            raise ValueError(
                "AttentionTransfer compares feature maps of the same spatial "
                f"size. Received: teacher {describe(teacher_shape)} and student "
                f"{describe(student_shape)} ({self.data_format}). Tap layers "
                "with equal spatial sizes; the channel counts may differ."
            )

    def get_config(self):
        return {**super().get_config(), "p": self.p, "data_format": self.data_format}
