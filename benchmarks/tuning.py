"""What `keras_distill.tune` costs and gives, against training alone.

On the demo's second part (the CNN teacher, the wide MLP student, every
label, validated on the last twelfth of the training images), in one run:
  (a) `--trials` fits of the student on the labels alone, the same epochs;
  (b) `kd.tune` with `--trials` trials (random search, the label-only
      trial among them), the teacher's pass included;
  (c) `kd.tune` with KerasTuner's Hyperband (`--epochs` at most per trial).
Prints wall times, the ratio (b) / (a), the test accuracy of the tuned
student against the label-only trial's, and the epochs Hyperband trained
against random search's.

    python benchmarks/tuning.py --backend tensorflow [--quick]
"""

import argparse
import os
import sys
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="the reproductions' quick data, 3 trials, 2 epochs")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.quick:
        args.trials, args.epochs = 3, 2
    import keras
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras_distill as kd
    from examples.demo import DEMO
    from reproductions import data as experiment_data
    from reproductions import models

    data = experiment_data.load(args.quick)
    units = DEMO["quick" if args.quick else "full"]["large_units"]
    split = len(data.x_train) // 12
    x, y = data.x_train[:-split], data.y_train[:-split]
    validation = (data.x_train[-split:], data.y_train[-split:])
    teacher = models.teacher(data, 0, "cnn")

    def student():
        keras.utils.set_random_seed(1)
        return models.mlp(units, "student")

    def accuracy(model):
        return models.accuracy(model, data.x_test, data.y_test)

    start = time.perf_counter()
    alone = []
    for trial in range(args.trials):
        model = models.compile_classifier(student())
        keras.utils.set_random_seed(trial)
        model.fit(x, y, epochs=args.epochs, batch_size=128, validation_data=validation, verbose=0)
        alone.append(accuracy(model))
    alone_seconds = time.perf_counter() - start

    searches = {}
    for search in ("random", "hyperband"):
        with tempfile.TemporaryDirectory() as directory:
            start = time.perf_counter()
            result = kd.tune(
                student,
                teacher,
                x,
                y,
                validation_data=validation,
                max_trials=args.trials,
                epochs=args.epochs,
                search=search,
                directory=directory,
                verbose=0,
            )
            seconds = time.perf_counter() - start
            searches[search] = {
                "seconds": seconds,
                "trials": len(result.trials),
                "epochs": sum(row["epochs"] for row in result.trials),
                "tuned": accuracy(result.student),
                "labels only": accuracy(result.label_only_student()),
                "best": result.best,
                "table": result.table,
            }

    random, hyperband = searches["random"], searches["hyperband"]
    ratio = random["seconds"] / alone_seconds
    lines = [
        f"Fashion-MNIST, {len(x):,} training / {len(validation[0]):,} validation / {len(data.x_test):,} test "
        f"images, backend {keras.backend.backend()}, Keras {keras.__version__}; student "
        f"784-{'-'.join(map(str, units))}-10, CNN teacher, {args.epochs} epochs per trial, batch 128.",
        "",
        "| run | trials | epochs trained | wall time (s) | ratio to (a) | test accuracy |",
        "|---|---|---|---|---|---|",
        f"| (a) {args.trials} fits on the labels alone | {args.trials} | {args.trials * args.epochs} | "
        f"{alone_seconds:.0f} | 1.00 | {100 * np.mean(alone):.2f}% (mean; best {100 * max(alone):.2f}%) |",
        f"| (b) kd.tune, random search | {random['trials']} | {random['epochs']} | {random['seconds']:.0f} | "
        f"{ratio:.2f} | tuned {100 * random['tuned']:.2f}%, its label-only trial {100 * random['labels only']:.2f}% |",
        f"| (c) kd.tune, Hyperband | {hyperband['trials']} | {hyperband['epochs']} | {hyperband['seconds']:.0f} | "
        f"{hyperband['seconds'] / alone_seconds:.2f} | tuned {100 * hyperband['tuned']:.2f}%, its label-only "
        f"trial {100 * hyperband['labels only']:.2f}% |",
        "",
        f"Targets: (b) / (a) = {ratio:.2f} <= 1.30: {'met' if ratio <= 1.3 else 'MISSED'}; tuned test accuracy "
        f"{100 * random['tuned']:.2f}% >= label-only {100 * random['labels only']:.2f}%: "
        f"{'met' if random['tuned'] >= random['labels only'] else 'MISSED'}. Hyperband trained "
        f"{hyperband['epochs']} epochs in {hyperband['trials']} trials, random search {random['epochs']} in "
        f"{random['trials']}.",
        "",
        "Random search's trials:",
        "",
        random["table"],
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    return {"ratio": ratio, "searches": searches, "alone": alone, "alone_seconds": alone_seconds}


if __name__ == "__main__":
    main()
