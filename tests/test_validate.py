import numpy as np
import pytest

from keras_distill._validate import check_choice
from keras_distill._validate import check_int
from keras_distill._validate import check_number


def test_a_wrong_type_is_a_type_error_naming_what_was_passed():
    for value in ("0.5", None, True, [0.5]):
        with pytest.raises(TypeError) as error:
            check_number(value, "alpha", example=0.5, at_least=0, at_most=1)
        assert f"`alpha` must be a number. Received: alpha={value!r} (of type" in str(error.value)
        assert str(error.value).endswith("Use e.g. alpha=0.5.")
    with pytest.raises(TypeError, match="`top_k` must be an int.*top_k=2.0"):
        check_int(2.0, "top_k", example=64, at_least=1)


def test_a_value_out_of_range_is_a_value_error_with_the_range():
    with pytest.raises(ValueError, match=r"in \[0, 1\]\. Received: alpha=1\.5\. Use e\.g\. alpha=0\.5\. Why\."):
        check_number(1.5, "alpha", example=0.5, at_least=0, at_most=1, note="Why.")
    with pytest.raises(ValueError, match=r"> 0\. Received: temperature=0"):
        check_number(0, "temperature", example=2.0, above=0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        check_number(1.0, "beta", example=0.5, above=0, below=1)
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            check_number(value, "weight", example=1.0)
    with pytest.raises(ValueError, match="a positive int <= 10"):
        check_int(11, "top_k", example=5, at_least=1, at_most=10)
    with pytest.raises(ValueError, match="an int >= 2"):
        check_int(1, "generations", example=3, at_least=2)
    with pytest.raises(ValueError, match=r"one of \('a', 'b'\)\. Received: mode='c'\. Use e\.g\. mode='b'"):
        check_choice("c", "mode", ("a", "b"), example="b")


def test_numbers_come_back_as_python_numbers():
    assert check_number(np.float32(0.25), "alpha", example=0.5, at_least=0, at_most=1) == 0.25
    assert type(check_number(2, "weight", example=1.0)) is float
    assert check_int(np.int64(3), "k", example=1, at_least=1) == 3
