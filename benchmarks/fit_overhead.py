"""The fixed cost of `Distiller.fit` on large arrays, against the student's own `fit`.

`Distiller.fit` checks its data before any step (labels in range, finite
inputs, the models' outputs on an example, ...). Those checks must cost
what a bounded sample costs, not what the data costs: on 300,000 x 784
float32 inputs (0.94 GB), both `fit`s below run 2 steps of batch 32, so
their time is Keras' own set-up (data adapter, tracing) plus the checks.
Each is run `--repeats` times, alternating, in one process, after one
untimed call of each (which also compiles); the medians are compared, at
two sizes of data, so that a cost growing with the data shows. The
target: `Distiller.fit` within 1.2x the student's own `fit` on the
largest.

The teacher is small (784-32-10) so that its forward pass, run only in the
two steps, costs nothing measurable: what is left is the fixed cost.

    python benchmarks/fit_overhead.py --backend jax
"""

import argparse
import os
import statistics
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--examples", type=int, nargs="+", default=[30_000, 300_000])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend

    import keras
    import numpy as np

    import keras_distill as kd

    def mlp(units, name):
        return keras.Sequential(
            [keras.Input((784,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(10)], name=name
        )

    keras.utils.set_random_seed(0)
    student, teacher = mlp(32, "student"), mlp(32, "teacher")
    student.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    distiller = kd.Distiller(student=mlp(32, "distilled_student"), teacher=teacher)
    distiller.compile("adam", "sparse_categorical_crossentropy", alpha=0.5)

    def timed(model, x, y):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, steps_per_epoch=2, batch_size=32, verbose=0)
        return time.perf_counter() - start

    rng = np.random.default_rng(0)
    print(f"fit(steps_per_epoch=2, batch_size=32), {args.backend}; medians of {args.repeats} calls, alternating")
    print("| inputs | the student's own fit (ms) | kd.Distiller.fit (ms) | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for examples in args.examples:
        x = rng.random((examples, 784), dtype=np.float32)
        y = rng.integers(0, 10, examples)
        timed(student, x, y), timed(distiller, x, y)  # compiles, and warms the data path
        times = {"student": [], "distiller": []}
        for _ in range(args.repeats):
            times["student"].append(timed(student, x, y))
            times["distiller"].append(timed(distiller, x, y))
        own, distilled = (statistics.median(times[name]) * 1e3 for name in ("student", "distiller"))
        ratios.append(distilled / own)
        print(
            f"| {examples:,} x 784 float32 ({x.nbytes / 1e9:.2f} GB) | {own:.2f} | {distilled:.2f} | {ratios[-1]:.2f} |"
        )
    print(f"ratio on the largest data: {ratios[-1]:.2f} (target <= 1.2)")
    return ratios[-1]


if __name__ == "__main__":
    sys.exit(0 if main() <= 1.2 else 1)
