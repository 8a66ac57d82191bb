import keras
import pytest

from keras_distill._training.projections import build_regressor


@pytest.mark.parametrize(
    "student_shape, teacher_shape, data_format, kernel",
    [
        ((None, 8, 8, 4), (None, 8, 8, 16), "channels_last", (1, 1)),
        ((None, 10, 9, 4), (None, 6, 6, 16), "channels_last", (5, 4)),
        ((None, 4, 10, 9), (None, 16, 6, 6), "channels_first", (5, 4)),
        ((None, 12, 4), (None, 10, 16), "channels_last", (3,)),
    ],
)
def test_convolutional_regressor_maps_to_the_hint_shape(student_shape, teacher_shape, data_format, kernel):
    regressor = build_regressor(student_shape, teacher_shape, data_format=data_format)
    assert regressor.kernel_size == kernel and regressor.data_format == data_format
    regressor.build(student_shape)
    output = regressor.compute_output_spec(keras.KerasTensor(student_shape)).shape
    assert tuple(output) == teacher_shape


def test_dense_regressor_and_errors():
    regressor = build_regressor((None, 8), (None, 32))
    assert isinstance(regressor, keras.layers.Dense) and regressor.units == 32
    with pytest.raises(ValueError, match="smaller than"):
        build_regressor((None, 4, 4, 8), (None, 8, 8, 8), data_format="channels_last")
    with pytest.raises(ValueError, match="ranks differ"):
        build_regressor((None, 8), (None, 4, 4, 8))
