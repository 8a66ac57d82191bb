"""keras_distill: knowledge distillation for Keras 3."""

from keras_distill import callbacks
from keras_distill import datasets
from keras_distill import losses
from keras_distill.distillers.distiller import Distiller

__version__ = "0.1.0"
