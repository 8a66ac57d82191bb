import gzip
import os
import struct

import numpy as np
import pytest

import keras_distill as kd
from keras_distill import datasets


def write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_mnist(directory, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, (n_train,)),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, (n_test,)),
    }
    for name, array in arrays.items():
        write_idx(os.path.join(directory, name), array)
    return arrays


@pytest.fixture
def no_default_places(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", str(tmp_path / "no-debian"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras-home"))
    monkeypatch.delenv("KERAS_DISTILL_DATA", raising=False)


def test_environment_directory_comes_first(monkeypatch, tmp_path, no_default_places):
    arrays = fake_fashion_mnist(tmp_path)
    monkeypatch.setenv("KERAS_DISTILL_DATA", str(tmp_path))
    (x_train, y_train), (x_test, y_test) = kd.datasets.load_fashion_mnist()
    assert x_train.dtype == np.uint8 and x_train.shape == (6, 28, 28)
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    (x_train, y_train), _ = kd.datasets.load_fashion_mnist(normalize=True)
    assert x_train.dtype == np.float32 and x_train.max() <= 1.0 and y_train.dtype == np.int64
    np.testing.assert_allclose(x_train * 255, arrays["train-images-idx3-ubyte.gz"], atol=1e-4)


def test_keras_cache_is_searched(tmp_path, no_default_places):
    cache = tmp_path / "no-keras-home" / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    fake_fashion_mnist(cache, n_train=3)
    (x_train, _), _ = kd.datasets.load_fashion_mnist(download=False)
    assert len(x_train) == 3


def test_the_keras_cache_comes_before_debians_copy(monkeypatch, tmp_path, no_default_places):
    cache = tmp_path / "no-keras-home" / "datasets" / "fashion-mnist"
    debian = tmp_path / "debian"
    cache.mkdir(parents=True)
    debian.mkdir()
    fake_fashion_mnist(cache, n_train=3)
    fake_fashion_mnist(debian, n_train=5)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", str(debian))
    assert datasets.fashion_mnist_dirs() == [str(cache), str(debian)]
    (x_train, _), _ = kd.datasets.load_fashion_mnist(download=False)
    assert len(x_train) == 3


def test_missing_data_names_every_place(monkeypatch, tmp_path, no_default_places):
    monkeypatch.setenv("KERAS_DISTILL_DATA", str(tmp_path / "mine"))
    with pytest.raises(FileNotFoundError) as error:
        kd.datasets.load_fashion_mnist(download=False)
    message = str(error.value)
    for place in (str(tmp_path / "mine"), str(tmp_path / "no-debian"), "no-keras-home"):
        assert place in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        datasets.read_idx(path)


@pytest.mark.skipif(
    not os.path.isdir(datasets.DEBIAN_FASHION_MNIST), reason="Debian's dataset-fashion-mnist is not installed"
)
def test_debian_package():
    (x_train, y_train), (x_test, y_test) = kd.datasets.load_fashion_mnist(download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert sorted(np.unique(y_train)) == list(range(10))


def test_digits():
    (x_train, y_train), (x_test, y_test) = kd.datasets.load_digits()
    assert x_train.shape[1:] == (8, 8) and len(x_train) + len(x_test) == 1797
    assert len(x_test) == 359 and x_train.max() == 16
    (x_norm, _), _ = kd.datasets.load_digits(normalize=True)
    np.testing.assert_allclose(x_norm * 16, x_train)


def test_digits_test_fraction():
    (x_train, _), (x_test, _) = kd.datasets.load_digits(test_fraction=0.5)
    assert len(x_test) == 898 and len(x_train) == 899
