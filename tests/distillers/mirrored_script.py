"""Trains each trainer on one device and under a two-replica
MirroredStrategy, and prints the histories and weights as JSON.
Run in a fresh process: logical devices must be set before TF starts."""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tests.distillers import multi_device_cases as cases  # noqa: E402


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {"replicas": strategy.num_replicas_in_sync}
    for kind in cases.KINDS:
        weights = cases.initial_weights(kind)
        single, _ = cases.train(kind, weights)
        with strategy.scope():
            mirrored, student = cases.train(kind, weights)
            results.setdefault("variable_devices", []).append(
                sorted({v.device for v in student.trainable_variables[0].value.values})
            )
        results[kind] = {"single": single, "parallel": mirrored}
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
