"""Fashion-MNIST as the reproductions use it: one load per process."""

import dataclasses
import functools

import numpy as np

from keras_distill import datasets

# Quick mode: enough images that every pipeline runs, few enough that all six
# experiments finish in under three minutes.
QUICK_TRAIN, QUICK_TEST = 2000, 1000
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclasses.dataclass(frozen=True)
class Data:
    """Flattened float32 images in [0, 1] and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    quick: bool

    @staticmethod
    def images(x):
        """`(n, 784)` -> `(n, 28, 28, 1)`, for convolutional models."""
        return x.reshape((len(x), 28, 28, 1))

    def describe(self):
        return f"Fashion-MNIST, {len(self.x_train):,} training and {len(self.x_test):,} test images"


@functools.lru_cache(maxsize=2)
def load(quick):
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(normalize=True)
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    if quick:
        x_train, y_train = x_train[:QUICK_TRAIN], y_train[:QUICK_TRAIN]
        x_test, y_test = x_test[:QUICK_TEST], y_test[:QUICK_TEST]
    return Data(x_train, y_train, x_test, y_test, quick)
