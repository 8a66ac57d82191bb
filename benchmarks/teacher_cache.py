"""Training from a teacher cache on disk: memory and speed against the cache's size.

A token model's dense float16 logits (the kind of cache a language model's
teacher writes) are cached with `precompute_teacher_outputs(...,
directory=...)` for 1x, 4x and 16x a fixed number of sequences, and a
fixed number of `Distiller` steps trains from each through
`keras_distill.CachedTeacherOutputs`, each in a fresh process that reports
its peak resident memory above its size before training (Linux /proc) and
its steps per second (after 5 warm-up steps). The in-memory cache of the 1x
size (`with_teacher_outputs` on arrays) is the reference for speed.

Targets: the 16x run's peak memory within 1.2x of the 1x run's; the 1x
streamed run at >= 0.9x the in-memory run's steps per second.

    python benchmarks/teacher_cache.py [--quick] [--output table.md]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(vocabulary, width, name, seed):
    import keras

    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(vocabulary, width)(tokens)
    hidden = keras.layers.Dense(width, activation="tanh")(hidden)
    return keras.Model(tokens, keras.layers.Dense(vocabulary)(hidden), name=name)


def data(examples, sequence, vocabulary):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, vocabulary, (examples, sequence)).astype("int32"), rng.integers(
        0, vocabulary, (examples, sequence)
    )


def probe(args):
    """One training run in this process: prints its peak memory and speed."""
    import keras
    import numpy as np

    # This script's directory is on the path of a probe, which runs it as a script.
    from step_time import read_status_kb
    from step_time import reset_peak_memory

    sys.path.insert(0, ROOT)
    import keras_distill as kd

    x, y = data(args.examples, args.sequence, args.vocabulary)
    teacher = build(args.vocabulary, 32, "teacher", 1)
    student = build(args.vocabulary, 16, "student", 2)
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy", alpha=0.5)
    if args.probe == "memory":
        names = sorted(name for name in os.listdir(args.cache) if name.endswith(".logits.npy"))
        logits = np.concatenate([np.load(os.path.join(args.cache, name)) for name in names])
        inputs = (x, kd.with_teacher_outputs(y, logits))
        kwargs = {"batch_size": args.batch_size}
    else:
        inputs = (kd.CachedTeacherOutputs(args.cache, x, y, batch_size=args.batch_size, teacher=teacher),)
        kwargs = {}
    baseline = reset_peak_memory()
    marks = {}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 5:
                marks["start"] = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            marks["end"] = time.perf_counter()

    distiller.fit(*inputs, epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[Clock()], **kwargs)
    steps_per_second = (args.steps - 5) / (marks["end"] - marks["start"])
    print(json.dumps({"peak_mb": (read_status_kb("VmHWM") - baseline) / 1024, "steps_per_second": steps_per_second}))


def run_probe(mode, cache, examples, args):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--probe",
        mode,
        "--cache",
        cache,
        "--examples",
        str(examples),
        "--sequence",
        str(args.sequence),
        "--vocabulary",
        str(args.vocabulary),
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"probe {mode} {cache} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16")
    parser.add_argument("--examples", type=int, default=4000, help="sequences of the 1x cache")
    parser.add_argument("--sequence", type=int, default=32)
    parser.add_argument("--vocabulary", type=int, default=1024)
    parser.add_argument("--shard-size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="1,024 sequences, vocabulary 128, 12 steps")
    parser.add_argument("--output", help="also write the table to this markdown file")
    parser.add_argument("--probe", choices=("memory", "stream"), help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if args.quick:
        args.examples, args.vocabulary, args.steps, args.shard_size = 1024, 128, 12, 256
    if args.probe:
        return probe(args)
    sys.path.insert(0, ROOT)
    import keras

    import keras_distill as kd

    sizes = [int(size) for size in args.sizes.split(",")]
    root = tempfile.mkdtemp(prefix="teacher_cache_benchmark_")
    rows = []
    try:
        for size in sizes:
            examples = args.examples * size
            x, _ = data(examples, args.sequence, args.vocabulary)
            teacher = build(args.vocabulary, 32, "teacher", 1)
            cache = os.path.join(root, f"x{size}")
            start = time.perf_counter()
            kd.precompute_teacher_outputs(teacher, x, dtype="float16", directory=cache, shard_size=args.shard_size)
            written = time.perf_counter() - start
            disk = sum(os.path.getsize(os.path.join(cache, name)) for name in os.listdir(cache))
            if size == sizes[0]:
                rows.append((f"{size}x in memory", disk, run_probe("memory", cache, examples, args), None))
            rows.append((f"{size}x streamed from disk", disk, run_probe("stream", cache, examples, args), written))
            shutil.rmtree(cache)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    memory_row = rows[0][2]
    streamed = [row for row in rows if "streamed" in row[0]]
    memory_ratio = streamed[-1][2]["peak_mb"] / max(streamed[0][2]["peak_mb"], 1e-9)
    speed_ratio = streamed[0][2]["steps_per_second"] / memory_row["steps_per_second"]
    lines = [
        f"backend {keras.backend.backend()}, Keras {keras.__version__}: dense float16 logits of a token model, "
        f"{args.examples:,} sequences of {args.sequence} tokens x {args.vocabulary:,} classes per 1x, shards of "
        f"{args.shard_size:,} sequences, {args.steps} Distiller steps of {args.batch_size} per run, each run in its "
        "own process; peak = peak RSS above the process's RSS before training; steps/s after 5 warm-up steps.",
        "",
        "| cache | on disk | written in | peak memory (MiB) | steps/s |",
        "|---|---|---|---|---|",
    ]
    for name, disk, measured, written in rows:
        lines.append(
            f"| {name} | {disk / 2**20:,.0f} MiB | {'-' if written is None else f'{written:.1f} s'} | "
            f"{measured['peak_mb']:,.0f} | {measured['steps_per_second']:.1f} |"
        )
    lines += [
        "",
        "Targets:",
        f"- peak memory {sizes[-1]}x / {sizes[0]}x streamed: {memory_ratio:.2f} <= 1.2: "
        f"{'met' if memory_ratio <= 1.2 else 'MISSED'}",
        f"- steps/s streamed / in memory ({sizes[0]}x): {speed_ratio:.2f} >= 0.9: "
        f"{'met' if speed_ratio >= 0.9 else 'MISSED'}",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    return {"rows": rows, "memory_ratio": memory_ratio, "speed_ratio": speed_ratio, "text": text}


if __name__ == "__main__":
    main()
