"""Loss scaling across replicas, for `tf.distribute` strategies.

Keras' own losses divide a batch mean by the number of replicas in sync, so
that the gradients summed over replicas equal the single-device gradient.
A loss term built from raw ops (here: regularization) must be divided the
same way, and every tracked metric multiplied back.
"""

import keras
from keras import ops


def replicas_in_sync():
    """Number of replicas of the current `tf.distribute` strategy, else 1."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def scale(value):
    """Divides a per-replica mean by the number of replicas in sync."""
    replicas = replicas_in_sync()
    if replicas == 1:
        return value
    return ops.multiply(value, ops.cast(1.0 / replicas, value.dtype))


def unscale(value):
    """Undoes `scale`, for values reported as metrics."""
    replicas = replicas_in_sync()
    if replicas == 1:
        return value
    return ops.multiply(value, ops.cast(replicas, value.dtype))
