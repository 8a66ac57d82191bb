"""Offline-first loaders for Fashion-MNIST and scikit-learn's digits: the
data of `keras-distill distill --data`, the repository's examples, notebooks
and tests."""

import gzip
import os
import struct

import numpy as np

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def read_idx(path):
    """Reads one IDX file (optionally gzipped) into a NumPy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(
            f"{path} is not an unsigned-byte IDX file (header {data[:4]!r}). "
            "Expected the Fashion-MNIST files "
            f"{sorted(_FASHION_FILES.values())}."
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _keras_cache_dir():
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(keras_home, "datasets", "fashion-mnist")


def fashion_mnist_dirs():
    """The directories searched for Fashion-MNIST, in order."""
    dirs = []
    if os.environ.get("KERAS_DISTILL_DATA"):
        dirs.append(os.environ["KERAS_DISTILL_DATA"])
    dirs += [_keras_cache_dir(), DEBIAN_FASHION_MNIST]
    return dirs


def _normalize(x, y, scale):
    return (x.astype("float32") / scale, y.astype("int64"))


def load_fashion_mnist(*, normalize=False, download=True):
    """Loads Fashion-MNIST as NumPy arrays, without the network if possible.

    Looks for the four IDX files, in order:

    1. in the directory named by the environment variable
       `KERAS_DISTILL_DATA`;
    2. in the Keras cache, `$KERAS_HOME/datasets/fashion-mnist/` (by
       default `~/.keras/datasets/fashion-mnist/`), where
       `keras.datasets.fashion_mnist.load_data()` downloads them;
    3. in `/usr/share/datasets/fashion-mnist/` (Debian's
       `dataset-fashion-mnist` package);
    4. and finally, with `download=True`, downloads them with
       `keras.datasets.fashion_mnist.load_data()`.

    Args:
        normalize: bool. `False` (default) returns what
            `keras.datasets.fashion_mnist.load_data()` returns: uint8 images
            of shape `(n, 28, 28)` and uint8 labels. `True` returns float32
            images in [0, 1] and int64 labels.
        download: bool. Whether to fall back to the Keras download.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: 60,000 and 10,000 examples.
    """
    tried = []
    for directory in fashion_mnist_dirs():
        paths = {k: os.path.join(directory, v) for k, v in _FASHION_FILES.items()}
        if all(os.path.exists(p) for p in paths.values()):
            arrays = {k: read_idx(p) for k, p in paths.items()}
            train, test = (
                (arrays["x_train"], arrays["y_train"]),
                (arrays["x_test"], arrays["y_test"]),
            )
            break
        tried.append(directory)
    else:
        train = test = None
        error = None
        if download:
            tried.append("keras.datasets.fashion_mnist.load_data() (download)")
            try:
                import keras

                train, test = keras.datasets.fashion_mnist.load_data()
            except Exception as e:  # no network, proxy, disk full...
                error = e
        if train is None:
            raise FileNotFoundError(
                "Fashion-MNIST was not found. Tried, in order: "
                + "; ".join(tried)
                + (f" (failed: {error})" if error else "")
                + ". Install Debian's package (`apt-get install "
                "dataset-fashion-mnist`), or put the four files "
                f"{sorted(_FASHION_FILES.values())} in a directory and set "
                "KERAS_DISTILL_DATA to it."
            )
    if normalize:
        return _normalize(*train, 255.0), _normalize(*test, 255.0)
    return train, test


def load_digits(*, normalize=False, test_fraction=0.2, seed=0):
    """Loads scikit-learn's bundled 8x8 digits (1,797 images), for quick runs.

    Args:
        normalize: bool. `False` (default) returns the original pixel values
            (0 to 16) as uint8; `True` returns float32 in [0, 1] and int64
            labels.
        test_fraction: float in (0, 1). Share of the examples held out.
        seed: int. Seed of the (stratification-free) shuffle before the split.

    Returns:
        `(x_train, y_train), (x_test, y_test)`, images of shape `(n, 8, 8)`.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as e:
        raise ImportError(
            "keras_distill.datasets.load_digits() needs scikit-learn. Install it with `pip install scikit-learn`."
        ) from e
    digits = sklearn_load_digits()
    x = digits.images.astype("uint8")
    y = digits.target.astype("uint8")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = len(x) - int(round(len(x) * test_fraction))
    train, test = (x[:split], y[:split]), (x[split:], y[split:])
    if normalize:
        return _normalize(*train, 16.0), _normalize(*test, 16.0)
    return train, test
