"""What the Ctrl-C guard and the teacher-in-callbacks sync cost per step.

Every entry point of keras_distill runs Keras' trainer inside a guard that
defers a Ctrl-C to the end of the step under way: a SIGINT handler set once
per call, and a callback that re-asks the loop to stop at each batch's end
once a Ctrl-C came. On JAX, when the user passes a callback that runs code
of its own at each batch, the guard also puts the step state back into the
variables before it (so that such a callback can call `teacher.predict`):
one assignment per variable per batch.

Each is measured against the same distiller's compiled step run by Keras'
own `keras.Model.fit` (called on the distiller, which skips keras_distill's
entry point, its checks and its guard), on the same data, epochs
interleaved in one process after a warm-up epoch, median of `--repeats`:

  (a) `keras.Model.fit(distiller, ...)`: no guard;
  (b) `distiller.fit(...)`: the guard;
  (c) `keras.Model.fit(distiller, ..., callbacks=[a batch callback])`;
  (d) `distiller.fit(..., callbacks=[the same callback])`: the guard and,
      on JAX, the sync before each batch's callbacks.

Small steps (a 784-64-10 student, a 784-256-10 teacher, batch 64) make the
per-step cost visible; it is reported per step and as a ratio.

    python benchmarks/interrupts.py --backend jax
"""

import argparse
import os
import statistics
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--examples", type=int, default=32_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend

    import keras
    import numpy as np

    import keras_distill as kd

    rng = np.random.default_rng(0)
    x = rng.random((args.examples, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.examples)

    def mlp(units, name):
        return keras.Sequential(
            [keras.Input((784,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(10)], name=name
        )

    keras.utils.set_random_seed(0)
    distiller = kd.Distiller(student=mlp(64, "student"), teacher=mlp(256, "teacher"))
    distiller.compile("adam", "sparse_categorical_crossentropy", alpha=0.5)

    class EveryBatch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1

    runs = {
        "(a) keras.Model.fit on the distiller": lambda: keras.Model.fit(distiller, x, y, **fit),
        "(b) distiller.fit": lambda: distiller.fit(x, y, **fit),
        "(c) keras.Model.fit, a batch callback": lambda: keras.Model.fit(
            distiller, x, y, callbacks=[EveryBatch()], **fit
        ),
        "(d) distiller.fit, a batch callback": lambda: distiller.fit(x, y, callbacks=[EveryBatch()], **fit),
    }
    fit = {"batch_size": 64, "epochs": 1, "verbose": 0, "shuffle": False}
    steps = -(-args.examples // fit["batch_size"])
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"{args.backend}, Keras {keras.__version__}, {args.examples:,} examples, batch {fit['batch_size']} "
        f"({steps} steps), median of {args.repeats} epochs per run, interleaved after a warm-up epoch"
    )
    print("| run | epoch (s) | per step (ms) | ratio |")
    print("|---|---|---|---|")
    for name, seconds in medians.items():
        base = medians[
            "(a) keras.Model.fit on the distiller"
            if "callback" not in name
            else "(c) keras.Model.fit, a batch callback"
        ]
        print(f"| {name} | {seconds:.3f} | {seconds / steps * 1e3:.3f} | {seconds / base:.3f} |")
    guard = medians["(b) distiller.fit"] / medians["(a) keras.Model.fit on the distiller"]
    synced = medians["(d) distiller.fit, a batch callback"] / medians["(c) keras.Model.fit, a batch callback"]
    print(f"the guard: {guard:.3f}x per epoch; the guard with a batch callback: {synced:.3f}x")
    return guard, synced


if __name__ == "__main__":
    main()
    sys.exit(0)
