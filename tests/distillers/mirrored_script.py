"""Trains one distiller on one device and under a two-replica
MirroredStrategy, and prints both histories and student weights as JSON.
Run in a fresh process: logical devices must be set before TF starts."""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_distill as kd  # noqa: E402


def build():
    def mlp(units, name, **kwargs):
        return keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(units, activation="relu", **kwargs), keras.layers.Dense(10)],
            name=name,
        )

    return mlp(8, "student", kernel_regularizer=keras.regularizers.L2(0.01)), mlp(32, "teacher")


def run(strategy, student_weights, teacher_weights, x, y, sample_weight):
    with strategy.scope():
        student, teacher = build()
        student.set_weights(student_weights)
        teacher.set_weights(teacher_weights)
        distiller = kd.Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            alpha=0.3,
            temperature=2.0,
        )
    history = distiller.fit(x, y, sample_weight=sample_weight, batch_size=32, epochs=2, shuffle=False, verbose=0)
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "weights": [w.tolist() for w in student.get_weights()],
    }


def main():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(128, 64)).astype("float32")
    y = rng.integers(0, 10, size=128)
    sample_weight = rng.uniform(0.5, 1.5, size=128).astype("float32")
    keras.utils.set_random_seed(0)
    student, teacher = build()
    args = (student.get_weights(), teacher.get_weights(), x, y, sample_weight)
    single = run(tf.distribute.get_strategy(), *args)
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored = run(mirrored_strategy, *args)
    json.dump(
        {"replicas": mirrored_strategy.num_replicas_in_sync, "single": single, "mirrored": mirrored}, sys.stdout
    )


if __name__ == "__main__":
    main()
