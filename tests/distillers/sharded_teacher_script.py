"""A keras-hub Llama teacher sharded by `keras_distill.sharding.
teacher_layout_map` over a (batch=2, model=4) mesh of 8 simulated CPU
devices, the student replicated (data-parallel): one training step of each
language-model distiller, against the same step on one device. Prints JSON.
Run in a fresh process: XLA_FLAGS must be set before jax is imported."""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import keras_distill as kd  # noqa: E402

VOCABULARY = 64


def llama(layers, hidden, name, seed):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=VOCABULARY,
        num_layers=layers,
        num_query_heads=4,
        num_key_value_heads=4,
        hidden_dim=hidden,
        intermediate_dim=2 * hidden,
        tie_word_embeddings=False,
        name=f"{name}_backbone",
    )
    return keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None, name=name)


def batch():
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(0, VOCABULARY, (8, 8)).astype("int32"), "padding_mask": np.ones((8, 8), bool)}
    weights = np.ones((8, 8), "float32")
    weights[:, :2] = 0.0  # a two-token prompt for the on-policy distiller
    return x, rng.integers(0, VOCABULARY, (8, 8)), weights


def step(kind, sharded):
    """One SGD step (learning rate 1): the loss and the student's gradient."""
    distribution = None
    if sharded:
        mesh = keras.distribution.DeviceMesh((2, 4), ["batch", "model"], keras.distribution.list_devices())
        layout_map = kd.sharding.teacher_layout_map(keras_hub.models.LlamaBackbone, mesh)
        distribution = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
        replicated = keras.distribution.ModelParallel(
            layout_map=keras.distribution.LayoutMap(mesh), batch_dim_name="batch"
        )
        with distribution.scope():
            teacher = llama(2, 32, "teacher", 1)
        with replicated.scope():
            student = llama(1, 16, "student", 2)
        keras.distribution.set_distribution(distribution)
    else:
        teacher, student = llama(2, 32, "teacher", 1), llama(1, 16, "student", 2)
    try:
        if kind == "on_policy":
            distiller = kd.OnPolicyDistiller(
                student=student, teacher=teacher, lmbda=1.0, sampling_temperature=0.0, seed=0
            )
            distiller.compile(keras.optimizers.SGD(1.0), temperature=2.0)
        else:
            distiller = getattr(kd, kind)(student=student, teacher=teacher)
            distiller.compile(keras.optimizers.SGD(1.0), "sparse_categorical_crossentropy", alpha=0.5, temperature=2.0)
        x, y, weights = batch()
        before = student.get_weights()
        logs = distiller.train_on_batch(x, y, sample_weight=weights, return_dict=True)
        gradient = [(a - b).tolist() for a, b in zip(before, student.get_weights())]
        shards = {}
        if sharded:
            for model, role in ((teacher, "teacher"), (student, "student")):
                for variable in model.weights:
                    if len(variable.shape) >= 2:
                        held = variable.value.sharding.shard_shape(variable.value.shape)
                        shards[f"{role}:{variable.path}"] = [int(np.prod(held)), int(np.prod(variable.shape))]
        return {"loss": float(logs["loss"]), "gradient": gradient, "shards": shards}
    finally:
        keras.distribution.set_distribution(None)


def main():
    results = {
        kind: {"single": step(kind, False), "sharded": step(kind, True)}
        for kind in ("Distiller", "CausalLMDistiller", "on_policy")
    }
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
