"""One process of a two-process JAX run (`jax.distributed` on localhost), or
the one-process reference, of `Distiller`, `CausalLMDistiller` and `Distiller`
from per-process teacher-cache shards; prints the student's loss history and
weights as JSON. See test_multi_process.py.

    python multi_process_script.py KIND single CACHE_DIR
    python multi_process_script.py KIND PROCESS_ID CACHE_DIR PORT
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402

KIND, ROLE, CACHE = sys.argv[1], sys.argv[2], sys.argv[3]
if ROLE != "single":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{sys.argv[4]}", num_processes=2, process_id=int(ROLE))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_distill as kd  # noqa: E402
from tests.distillers import multi_device_cases as cases  # noqa: E402

GLOBAL_BATCH = 16


def halves(count, process):
    """This process's rows: the `process`-th half of every global batch,
    so that the processes' batches side by side are the one-process batch."""
    half = GLOBAL_BATCH // 2
    starts = range(process * half, count, GLOBAL_BATCH)
    return np.concatenate([np.arange(start, start + half) for start in starts])


def language_models():
    import keras_hub

    def gpt2(layers, width, name):
        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=12,
            num_layers=layers,
            num_heads=2,
            hidden_dim=width,
            intermediate_dim=2 * width,
            max_sequence_length=8,
            dropout=0.0,
            name=f"{name}_backbone",
        )
        return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None, name=name)

    keras.utils.set_random_seed(0)
    teacher, student = gpt2(2, 16, "teacher"), gpt2(1, 8, "student")
    distiller = kd.CausalLMDistiller(student=student, teacher=teacher, chunk_size=4)
    distiller.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", alpha=0.5, temperature=2.0)
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(0, 12, (64, 6)).astype("int32"), "padding_mask": np.ones((64, 6), bool)}
    return distiller, student, x, rng.integers(0, 12, (64, 6))


def main():
    if ROLE != "single":
        distribution = keras.distribution.DataParallel(devices=jax.devices())
        distribution.auto_shard_dataset = False  # each process passes its own rows
        keras.distribution.set_distribution(distribution)
    process = None if ROLE == "single" else int(ROLE)
    if KIND == "causal_lm":
        distiller, student, x, y = language_models()
        rows = np.arange(len(y)) if process is None else halves(len(y), process)
        data = ({key: value[rows] for key, value in x.items()}, y[rows])
        kwargs = {"sample_weight": None}
    else:
        weights = cases.initial_weights("distiller")
        distiller, parts = cases.build("distiller")
        for part, values in zip(parts, weights):
            part.set_weights(values)
        student = parts[0]
        x, y, sample_weight = cases.data()
        if KIND == "distiller":
            rows = np.arange(len(y)) if process is None else halves(len(y), process)
            data, kwargs = (x[rows], y[rows]), {"sample_weight": sample_weight[rows]}
        else:  # per-process cache shards: process p reads shard p, rows [64 p, 64 p + 64)
            if process is None:
                kd.precompute_teacher_outputs(parts[1], x, directory=CACHE, shard_size=len(y) // 2)
                logits = kd.precompute_teacher_outputs(parts[1], x)
                half = GLOBAL_BATCH // 2
                order = np.concatenate(
                    [np.r_[k * half : (k + 1) * half, 64 + k * half : 64 + (k + 1) * half] for k in range(64 // half)]
                )
                data, kwargs = (x[order], kd.with_teacher_outputs(y[order], logits[order])), {}
            else:
                cached = kd.CachedTeacherOutputs(
                    CACHE, x, y, batch_size=GLOBAL_BATCH // 2, shuffle=False, process_index=process, process_count=2
                )
                data, kwargs = (cached,), {}
    batch = (
        {}
        if KIND == "cache" and process is not None
        else {"batch_size": GLOBAL_BATCH if process is None else GLOBAL_BATCH // 2}
    )
    history = distiller.fit(*data, epochs=2, shuffle=False, verbose=0, **batch, **kwargs)
    if process in (None, 0):
        print(json.dumps({"loss": history.history["loss"], "weights": [w.tolist() for w in student.get_weights()]}))


if __name__ == "__main__":
    main()
