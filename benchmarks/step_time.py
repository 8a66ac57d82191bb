"""Epoch time and peak memory of distillation against the student alone.

For one backend per run, on identical models, data and batch size, each
run's epoch is timed (from Keras' `on_epoch_begin` to `on_epoch_end`)
interleaved with the others in one process, after a warm-up epoch (which
also compiles):

Table 1, soft targets (teacher 784-1200-1200-10, student 784-800-800-10):
  (a) the plain student `fit` on labels;
  (b) `keras_distill.Distiller`, live teacher;
  (c) `keras_distill.Distiller` on cached teacher logits
      (`keras_distill.precompute_teacher_outputs`, computed once, untimed
      but reported);
  (d) `keras.distillation.Distiller` with `LogitsDistillation`.
Table 2, feature distillation (teacher 784-1200-800-10, student
784-800-800-10, the teacher's second hidden layer guiding the student's
first, MSE on equal widths, plus soft targets):
  (e) `keras_distill.HintDistiller` stage 2 (hint_weight > 0);
  (f) `keras.distillation.Distiller` with `LogitsDistillation` and
      `FeatureDistillation`.

Ratios are to (a). The analytic floor of a live-teacher run is
1 + teacher-forward MACs / student-train-step MACs, a train step costing
about three forward passes (forward, and two matmuls per layer backward).
Peak memory is the peak resident set size of a separate process that
builds the data and models and runs two epochs of that one variant,
counted above the process's size after the imports (Linux /proc).

    python benchmarks/step_time.py --backend jax
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE_1 = ("a", "b", "c", "d")
TABLE_2 = ("a", "e", "f")
NAMES = {
    "a": "(a) student alone",
    "b": "(b) kd.Distiller, live teacher",
    "c": "(c) kd.Distiller, cached teacher logits",
    "d": "(d) keras.distillation.Distiller, LogitsDistillation",
    "e": "(e) kd.HintDistiller stage 2 (hint + soft targets)",
    "f": "(f) keras.distillation.Distiller, Logits + FeatureDistillation",
}


def forward_macs(model):
    """Multiply-accumulates of one forward pass per example (Dense, Conv)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_macs(layer)
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
        elif hasattr(layer, "kernel") and len(layer.kernel.shape) > 2:
            spatial = layer.output.shape[1:-1] if layer.data_format == "channels_last" else layer.output.shape[2:]
            positions = 1
            for size in spatial:
                positions *= int(size)
            kernel = 1
            for size in layer.kernel.shape:
                kernel *= int(size)
            total += kernel * positions
    return total


class Setup:
    """The models and data of every variant, built with the same seed."""

    def __init__(self, examples, variants):
        import keras
        import numpy as np

        import keras_distill as kd
        from reproductions.models import build_mlp

        rng = np.random.default_rng(0)
        self.x = rng.uniform(size=(examples, 784)).astype("float32")
        self.y = rng.integers(0, 10, size=examples)
        keras.utils.set_random_seed(0)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.teacher = build_mlp([1200, 1200], name="teacher")
        self.feature_teacher = build_mlp([1200, 800], name="feature_teacher")
        initial = build_mlp([800, 800], name="student").get_weights()
        self.cache_seconds = None
        self.models, self.targets = {}, {}

        def student(name):
            model = build_mlp([800, 800], name=name)
            model.set_weights(initial)
            return model

        for key in variants:
            if key == "a":
                model = student("student_a")
                model.compile(optimizer="adam", loss=ce)
            elif key in ("b", "c"):
                model = kd.Distiller(student=student(f"student_{key}"), teacher=self.teacher)
                model.compile(optimizer="adam", loss=ce, alpha=0.5, temperature=2.0)
            elif key == "d":
                model = keras.distillation.Distiller(
                    teacher=self.teacher,
                    student=student("student_d"),
                    distillation_losses=keras.distillation.LogitsDistillation(temperature=2.0),
                    student_loss_weight=0.5,
                )
                model.compile(optimizer="adam", loss=ce)
            elif key == "e":
                model = kd.HintDistiller(
                    student=student("student_e"),
                    teacher=self.feature_teacher,
                    hint_layer="dense_1",
                    guided_layer="dense_0",
                    regressor=keras.layers.Identity(),
                )
                model.compile(optimizer="adam", loss=ce, alpha=0.5, temperature=2.0, hint_weight=1.0)
            else:
                model = keras.distillation.Distiller(
                    teacher=self.feature_teacher,
                    student=student("student_f"),
                    distillation_losses=[
                        keras.distillation.LogitsDistillation(temperature=2.0),
                        keras.distillation.FeatureDistillation(
                            loss="mse", teacher_layer_name="dense_1", student_layer_name="dense_0"
                        ),
                    ],
                    student_loss_weight=0.5,
                )
                model.compile(optimizer="adam", loss=ce)
            self.models[key] = model
            self.targets[key] = self.y
        if "c" in variants:
            start = time.perf_counter()
            logits = kd.precompute_teacher_outputs(self.teacher, self.x, batch_size=1024)
            self.cache_seconds = time.perf_counter() - start
            self.targets["c"] = kd.with_teacher_outputs(self.y, logits)

    def epoch(self, key, batch_size):
        """Seconds from the epoch's start to its end: the steps, not what a
        `fit` call does once before them (Keras' data adapter, keras_distill's
        pre-flight checks), which a 0.1 s GPU epoch would not amortize."""
        import keras

        clock = {}

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock["start"] = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                clock["end"] = time.perf_counter()

        self.models[key].fit(self.x, self.targets[key], batch_size=batch_size, epochs=1, verbose=0, callbacks=[Clock()])
        return clock["end"] - clock["start"]


def read_status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_memory():
    """Resets the peak RSS (Linux: clear_refs 5) and returns the RSS in KiB,
    so that the imports' peak is not counted."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return read_status_kb("VmRSS")


def peak_memory_mb(backend, key, args):
    """Peak RSS (MiB) of a fresh process running only variant `key`, above
    its RSS after the imports: models, data, optimizer, compiled steps."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--backend",
        backend,
        "--probe-memory",
        key,
        "--examples",
        str(args.examples),
        "--batch-size",
        str(args.batch_size),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe {key} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]


def table(title, keys, times, memory, floor, note=""):
    base = statistics.median(times["a"])
    lines = [f"### {title}", "", "| run | epoch (s) | ratio to (a) | peak memory (MiB) |", "|---|---|---|---|"]
    ratios = {}
    for key in keys:
        median = statistics.median(times[key])
        ratios[key] = median / base
        mem = f"{memory[key]:.0f}" if memory else "not measured"
        lines.append(f"| {NAMES[key]} | {median:.2f} | {ratios[key]:.2f} | {mem} |")
    lines += ["", f"Analytic floor of a live-teacher run: {floor:.2f}.{note}", ""]
    return lines, ratios


def verdict(name, value, limit, comparison="<="):
    met = value <= limit
    return f"- {name}: {value:.2f} {comparison} {limit:.2f}: {'met' if met else 'MISSED'}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,048 examples, 1 timed epoch each")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--output", help="also write the tables to this markdown file")
    parser.add_argument("--probe-memory", choices=NAMES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.quick:
        args.examples, args.repeats = 2048, 1
    sys.path.insert(0, ROOT)
    import keras

    backend = keras.backend.backend()
    if args.probe_memory:
        import keras_distill  # noqa: F401  (its imports count in the baseline)

        baseline = reset_peak_memory()
        setup = Setup(args.examples, [args.probe_memory])
        for _ in range(2):
            setup.epoch(args.probe_memory, args.batch_size)
        print(json.dumps({"peak_mb": (read_status_kb("VmHWM") - baseline) / 1024}))
        return None

    keys = ("a", "b", "c", "d", "e", "f")
    setup = Setup(args.examples, keys)
    times = {key: [] for key in keys}
    for repeat in range(args.repeats + 1):  # round 0 warms up and compiles
        for key in keys:
            seconds = setup.epoch(key, args.batch_size)
            if repeat:
                times[key].append(seconds)
    memory = None if args.no_memory else {key: peak_memory_mb(backend, key, args) for key in keys}

    student_step = 3 * forward_macs(setup.models["a"])
    floor_1 = 1 + forward_macs(setup.teacher) / student_step
    floor_2 = 1 + forward_macs(setup.feature_teacher) / student_step
    cache_epochs = setup.cache_seconds / statistics.median(times["a"])
    lines = [
        f"backend {backend}, Keras {keras.__version__}, {args.examples} examples, batch "
        f"{args.batch_size}, median of {args.repeats} epoch(s) per run (epoch start to end, without what `fit` "
        "does once before it), interleaved after a warm-up epoch",
        "",
    ]
    part, ratios = table(
        "Soft targets",
        TABLE_1,
        times,
        memory,
        floor_1,
        f" Computing the cache (c) took {setup.cache_seconds:.2f} s once, {cache_epochs:.2f} epochs of (a).",
    )
    lines += part
    part, ratios_2 = table("Feature distillation", TABLE_2, times, memory, floor_2)
    lines += part
    lines += [
        "Targets:",
        verdict("(c) cached / (a)", ratios["c"], 1.10),
        verdict("(b) live / (a) against 1.1 x floor", ratios["b"], 1.1 * floor_1),
        verdict("(b) against (d)", ratios["b"], ratios["d"]),
        verdict("(e) against (f)", ratios_2["e"], ratios_2["f"]),
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    return {
        "ratios": {**ratios, **ratios_2},
        "floor": floor_1,
        "feature_floor": floor_2,
        "memory": memory,
        "text": text,
    }


if __name__ == "__main__":
    main()
