"""Deep Mutual Learning and teacher assistants on Fashion-MNIST.

dml   Two different peers (an MLP 784-256-10 and a small CNN, 8 | 16 3x3
      convolutions) trained independently and mutually
      (keras_distill.MutualLearner, T = 1), the same epochs, for several
      seeds; prints each peer's mean and standard deviation of test
      accuracy.
takd  A teacher MLP 784-1200-1200-10 (dropout 0.3), an assistant
      784-128-10 and a student 784-16-10: the student from scratch,
      distilled directly from the teacher, and through the assistant
      (keras_distill.AssistantChain), the student's epochs equal in every
      case (alpha 0.1, T 4 for both distillations).

    python benchmarks/online_methods.py --backend jax [--quick]
"""

import argparse
import os
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--experiment", choices=("dml", "takd", "all"), default="all")
    parser.add_argument("--train-examples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="1,000 examples, 1 epoch, 1 seed")
    parser.add_argument("--output", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.quick:
        args.train_examples, args.epochs, args.seeds = 1000, 1, 1
    import keras

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras_distill as kd

    (x, y), (x_test, y_test) = kd.datasets.load_fashion_mnist(normalize=True)
    x, y = x[: args.train_examples], y[: args.train_examples]
    if args.quick:
        x_test, y_test = x_test[:1000], y_test[:1000]
    data = (x[..., None], y, x_test[..., None], y_test)
    tables = []
    header = (
        f"Fashion-MNIST, {len(x):,} training / {len(x_test):,} test images, "
        f"backend {keras.backend.backend()}, {args.epochs} epochs, batch {args.batch_size}."
    )
    if args.experiment in ("dml", "all"):
        tables.append(run_dml(kd, keras, data, args))
    if args.experiment in ("takd", "all"):
        tables.append(run_takd(kd, keras, data, args))
    text = header + "\n\n" + "\n\n".join(tables)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    return text


def mlp(keras, hidden, name, dropout=0.0):
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten()]
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    return keras.Sequential(layers + [keras.layers.Dense(10)], name=name)


def cnn(keras, name):
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(h)
    h = keras.layers.MaxPooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(h)), name=name)


def run_dml(kd, keras, data, args):
    from reproductions.models import accuracy
    from reproductions.report import percent as summary

    x, y, x_test, y_test = data
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    results = {key: [] for key in ("mlp alone", "cnn alone", "mlp mutual", "cnn mutual")}
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        peers = {"mlp": mlp(keras, [256], "mlp"), "cnn": cnn(keras, "cnn")}
        initial = {name: model.get_weights() for name, model in peers.items()}
        for name, model in peers.items():
            model.compile(optimizer="adam", loss=loss)
            keras.utils.set_random_seed(seed)
            model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
            results[f"{name} alone"].append(accuracy(model, x_test, y_test))
            model.set_weights(initial[name])
        keras.utils.set_random_seed(seed)
        learner = kd.MutualLearner([peers["mlp"], peers["cnn"]])
        learner.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        learner.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
        for name, model in peers.items():
            results[f"{name} mutual"].append(accuracy(model, x_test, y_test))
        print(f"dml seed {seed}: " + ", ".join(f"{k} {100 * v[-1]:.2f}%" for k, v in results.items()), flush=True)
    lines = [
        f"Deep Mutual Learning, {args.seeds} seed(s), same initial weights alone and mutual:",
        "",
        "| peer | parameters | trained alone | trained mutually |",
        "|---|---|---|---|",
    ]
    for name, model in peers.items():
        lines.append(
            f"| {name} | {model.count_params():,} | {summary(results[f'{name} alone'])} "
            f"| {summary(results[f'{name} mutual'])} |"
        )
    return "\n".join(lines)


def run_takd(kd, keras, data, args):
    from reproductions.models import accuracy

    x, y, x_test, y_test = data
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    settings = dict(loss=loss, metrics=["accuracy"], alpha=0.1, temperature=4.0)
    fit = dict(epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    keras.utils.set_random_seed(0)
    teacher = mlp(keras, [1200, 1200], "teacher", dropout=0.3)
    teacher.compile(optimizer="adam", loss=loss)
    teacher.fit(x, y, **fit)
    initial = mlp(keras, [16], "student").get_weights()

    def student():
        model = mlp(keras, [16], "student")
        model.set_weights(initial)
        return model

    rows = [("teacher 784-1200-1200-10", teacher, None)]
    start = time.perf_counter()
    scratch = student()
    scratch.compile(optimizer="adam", loss=loss)
    scratch.fit(x, y, **fit)
    rows.append(("student 784-16-10 from scratch", scratch, time.perf_counter() - start))
    start = time.perf_counter()
    direct = student()
    distiller = kd.Distiller(student=direct, teacher=teacher)
    distiller.compile(optimizer="adam", **settings)
    distiller.fit(x, y, **fit)
    rows.append(("student distilled from the teacher", direct, time.perf_counter() - start))
    start = time.perf_counter()
    assistant, chained = mlp(keras, [128], "assistant"), student()
    chain = kd.AssistantChain([teacher, assistant, chained])
    chain.compile(optimizer="adam", **settings)
    chain.fit(x, y, **fit)
    rows.append(("assistant 784-128-10, distilled from the teacher", assistant, None))
    rows.append(("student distilled through the assistant", chained, time.perf_counter() - start))
    lines = [
        "Teacher assistant (one seed; every student starts from the same weights):",
        "",
        "| model | test accuracy |",
        "|---|---|",
    ]
    lines += [f"| {label} | {100 * accuracy(model, x_test, y_test):.2f}% |" for label, model, _ in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
