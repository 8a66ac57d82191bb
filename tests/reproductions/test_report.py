import numpy as np

from reproductions import report


def test_mean_std_is_the_sample_standard_deviation():
    values = [0.81, 0.84, 0.86]
    expected = f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f}"
    assert report.mean_std(values, scale=100.0) == expected
    assert report.mean_std([3.0]) == "3.00 ± 0.00"
