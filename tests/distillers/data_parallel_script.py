"""Trains each trainer on one device and with keras.distribution
(DataParallel, and ModelParallel for the Distiller) over two simulated CPU
devices, and prints the histories and weights as JSON. Run in a fresh
process: XLA_FLAGS must be set before jax is imported."""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import keras  # noqa: E402

from tests.distillers import multi_device_cases as cases  # noqa: E402


def model_parallel(devices):
    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices)
    layout_map = keras.distribution.LayoutMap(mesh)
    # Hidden units split across the two devices (Megatron-style columns).
    layout_map[".*hidden/kernel"] = (None, "model")
    layout_map[".*hidden/bias"] = ("model",)
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")


def sharding(student):
    """The student's hidden kernel: its mesh devices and partition spec."""
    value = student.get_layer("student_hidden").kernel.value
    return {"devices": len(value.sharding.device_set), "spec": [str(axis) for axis in value.sharding.spec]}


def main():
    devices = keras.distribution.list_devices("cpu")
    results = {"replicas": len(devices)}
    for kind in cases.KINDS:
        weights = cases.initial_weights(kind)
        single, _ = cases.train(kind, weights)
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            parallel, student = cases.train(kind, weights)
            results.setdefault("kernel_sharding", []).append(sharding(student))
        finally:
            keras.distribution.set_distribution(None)
        results[kind] = {"single": single, "parallel": parallel}
    weights = cases.initial_weights("distiller")
    keras.distribution.set_distribution(model_parallel(devices))
    try:
        sharded, student = cases.train("distiller", weights)
        results["model_parallel_kernel_sharding"] = sharding(student)
    finally:
        keras.distribution.set_distribution(None)
    results["distiller_model_parallel"] = {"single": results["distiller"]["single"], "parallel": sharded}
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
