"""The flow of solution procedure (FSP) of Yim et al. (2017)."""

import keras
from keras import ops

from keras_distill.losses.base import FeatureLoss
from keras_distill.losses.base import describe
from keras_distill.losses.base import resolve_data_format


def fsp_matrix(feature_a, feature_b, data_format=None):
    """The FSP (Gram) matrix between two feature maps, per example.

    `G[i, j] = sum over positions s of F_a[s, i] * F_b[s, j] / (number of
    positions)`. When the maps differ in spatial size, the larger one is
    average-pooled to the smaller (the ratio must be a whole number).

    Args:
        feature_a: Tensor `(batch, h, w, m)` (channels_last) or
            `(batch, m, h, w)` (channels_first); any number of spatial axes.
        feature_b: Tensor with `n` channels and the same number of spatial
            axes.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Returns:
        A float32 tensor of shape `(batch, m, n)`.
    """
    data_format = resolve_data_format(data_format)
    feature_a = ops.cast(feature_a, "float32")
    feature_b = ops.cast(feature_b, "float32")
    feature_a, feature_b = _pool_to_common_size(feature_a, feature_b, data_format)
    if data_format == "channels_first":
        feature_a = ops.moveaxis(feature_a, 1, -1)
        feature_b = ops.moveaxis(feature_b, 1, -1)
    batch = ops.shape(feature_a)[0]
    flat_a = ops.reshape(feature_a, (batch, -1, ops.shape(feature_a)[-1]))
    flat_b = ops.reshape(feature_b, (batch, -1, ops.shape(feature_b)[-1]))
    positions = ops.cast(ops.shape(flat_a)[1], "float32")
    return ops.einsum("bsm,bsn->bmn", flat_a, flat_b) / positions


def fsp_loss(teacher_features, student_features, data_format=None):
    """Squared distance between the teacher's and student's FSP matrices.

    Args:
        teacher_features: pair `(feature_a, feature_b)` of teacher maps.
        student_features: pair of student maps giving a matrix of the same
            shape (the same channel counts).
        data_format: as in `fsp_matrix`.

    Returns:
        A float32 tensor of shape `(batch,)`: `||G_teacher - G_student||^2`.
    """
    teacher = fsp_matrix(*teacher_features, data_format=data_format)
    student = fsp_matrix(*student_features, data_format=data_format)
    return ops.sum(ops.square(teacher - student), axis=(1, 2))


@keras.saving.register_keras_serializable(package="keras_distill")
class FSPLoss(FeatureLoss):
    """`||G_teacher - G_student||_2^2` between FSP matrices (Yim et al.).

    `y_true` is a pair of teacher feature maps and `y_pred` a pair of student
    maps; each pair gives an FSP matrix (`keras_distill.losses.fsp_matrix`)
    and the loss is their squared distance, averaged over the batch.

    Args:
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        reduction: Type of reduction, as in `keras.losses.Loss`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to float32.

    Reference:
        - [Yim et al., 2017](https://openaccess.thecvf.com/content_cvpr_2017/html/Yim_A_Gift_From_CVPR_2017_paper.html)
    """

    def __init__(
        self,
        data_format=None,
        reduction="sum_over_batch_size",
        name="fsp_loss",
        dtype=None,
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.data_format = resolve_data_format(data_format)

    def call(self, y_true, y_pred):
        return fsp_loss(y_true, y_pred, data_format=self.data_format)

    def check_shapes(self, teacher_shape, student_shape):
        matrices = []
        for side, shapes in (("teacher", teacher_shape), ("student", student_shape)):
            if (
                not isinstance(shapes, (tuple, list))
                or len(shapes) != 2
                or not all(isinstance(shape, (tuple, list)) for shape in shapes)
            ):
                raise ValueError(
                    f"FSPLoss compares pairs of feature maps. Received for the "
                    f"{side}: {shapes!r}. Give two layers per side, e.g. "
                    "pairs=[(('t_a', 't_b'), ('s_a', 's_b'))]."
                )
            for shape in shapes:
                if len(shape) < 3:
                    raise ValueError(
                        "FSP matrices need feature maps with spatial axes. "
                        f"Received a {side} feature of shape {describe(shape)}. "
                        "Tap convolutional layers (rank 3 or more)."
                    )
            matrices.append(tuple(self._channels(shape) for shape in shapes))
        if matrices[0] != matrices[1]:
            raise ValueError(
                "Teacher and student FSP matrices must have the same shape. "
                f"Received: teacher maps with {matrices[0]} channels and "
                f"student maps with {matrices[1]} channels, giving "
                f"{matrices[0][0]}x{matrices[0][1]} and "
                f"{matrices[1][0]}x{matrices[1][1]} matrices. Tap student "
                "layers with the teacher's channel counts."
            )

    def _channels(self, shape):
        return shape[-1] if self.data_format == "channels_last" else shape[1]

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


def _pool_to_common_size(feature_a, feature_b, data_format):
    spatial = slice(1, -1) if data_format == "channels_last" else slice(2, None)
    size_a = tuple(feature_a.shape)[spatial]
    size_b = tuple(feature_b.shape)[spatial]
    if len(size_a) != len(size_b):
        raise ValueError(
            "The two maps of an FSP pair must have the same number of spatial "
            f"axes. Received shapes {describe(feature_a.shape)} and "
            f"{describe(feature_b.shape)}."
        )
    if size_a == size_b:
        return feature_a, feature_b
    if None in size_a + size_b:
        raise ValueError(
            f"To pool one map of an FSP pair to the other's size, both sizes must be known. Received spatial "
            f"sizes {size_a} and {size_b}. Give the model a fixed input size (e.g. keras.Input((32, 32, 3)))."
        )
    if all(a >= b for a, b in zip(size_a, size_b)):
        return _pool(feature_a, size_a, size_b, data_format), feature_b
    if all(b >= a for a, b in zip(size_a, size_b)):
        return feature_a, _pool(feature_b, size_b, size_a, data_format)
    raise ValueError(
        f"Cannot pool one map of an FSP pair to the other's size. Received spatial sizes {size_a} and {size_b}."
    )


def _pool(feature, size, target, data_format):
    if any(s % t for s, t in zip(size, target)):
        raise ValueError(
            f"To pool a map of spatial size {size} to {target}, each size must "
            "be a whole multiple of the target. Tap layers whose sizes "
            "divide evenly (e.g. 28x28 and 14x14)."
        )
    pool = tuple(s // t for s, t in zip(size, target))
    return ops.average_pool(feature, pool, strides=pool, padding="valid", data_format=data_format)
