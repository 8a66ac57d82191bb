"""Epoch time of distillation against training the student alone.

Times, for one backend per run, on identical models, data and batch size,
interleaved in one process after a warm-up epoch:
  (a) the plain student `fit` on labels;
  (b) `keras_distill.Distiller` with a live teacher;
and prints the ratio (b)/(a) next to its analytic floor,
1 + teacher-forward FLOPs / student-train-step FLOPs (a train step costs
about three forward passes). Ratios, never absolute times, are the result.

    python benchmarks/step_time.py --backend jax
"""

import argparse
import os
import statistics
import sys
import time


def dense_macs(model):
    """Multiply-accumulates of one forward pass of an MLP, per example."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel = layer.kernel
            total += int(kernel.shape[0]) * int(kernel.shape[1])
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    import keras
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras_distill as kd
    from keras_distill.jobs import build_mlp

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.examples, 784)).astype("float32")
    y = rng.integers(0, 10, size=args.examples)
    keras.utils.set_random_seed(0)
    teacher = build_mlp([1200, 1200], name="teacher")
    student_a = build_mlp([800, 800], name="student_a")
    student_b = build_mlp([800, 800], name="student_b")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    student_a.compile(optimizer="adam", loss=loss)
    distiller = kd.Distiller(student=student_b, teacher=teacher)
    distiller.compile(optimizer="adam", loss=loss)
    runs = {"(a) student alone": student_a, "(b) Distiller, live teacher": distiller}

    times = {name: [] for name in runs}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name, model in runs.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
            if repeat:
                times[name].append(time.perf_counter() - start)

    base = statistics.median(times["(a) student alone"])
    floor = 1 + dense_macs(teacher) / (3 * dense_macs(student_b))
    print(f"backend {keras.backend.backend()}, {args.examples} examples, batch "
          f"{args.batch_size}, median of {args.repeats} epochs each")
    print("| run | epoch (s) | ratio to (a) |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / base:.2f} |")
    print(f"\nAnalytic floor for (b): {floor:.2f} "
          "(1 + teacher forward / student train step, in MACs).")


if __name__ == "__main__":
    main()
