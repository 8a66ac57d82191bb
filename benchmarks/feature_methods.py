"""Each distiller on a small CNN pair on Fashion-MNIST, with and without
its first stage, every student trained for the same number of epochs.

One teacher (six 3x3 convolutions, 32-32-32 | 64-64-64 channels, each block
max-pooled, then a dense layer on the flattened 7x7 maps) is trained
on the labels. A thin student (four convolutions, 16-16 | 32-32) is trained,
from the same initial weights and for the same total number of epochs, with:

  scratch        labels only
  kd             keras_distill.Distiller (alpha 0.5, T 4)
  fitnets        HintDistiller: `--stage-epochs` of fit_hints (teacher
                 block-1 output -> student block-1 output, 1x1 regressor),
                 then kd for the remaining epochs
  attention      FeatureDistiller with AttentionTransfer on both blocks'
                 outputs (weight 1000, labels only, as in the paper)
  rkd            FeatureDistiller on the flattened features: RKDDistance
                 (weight 25) for `--stage-epochs`, then RKDAngle (weight 50),
                 both with kd

FSP matrices need the teacher's channel counts, so FSP gets a shallow
student of the teacher's widths (32-32 | 64-64), trained from scratch and
with `--stage-epochs` of fit_fsp followed by labels.

It prints a markdown table of test accuracy.

    python benchmarks/feature_methods.py --backend jax
"""

import argparse
import os
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--train-examples", type=int, default=10000)
    parser.add_argument("--test-examples", type=int, default=10000)
    parser.add_argument("--teacher-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6, help="total epochs of every student")
    parser.add_argument("--stage-epochs", type=int, default=2, help="of them, first-stage epochs")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few hundred examples, one epoch each")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.quick:
        args.train_examples, args.test_examples = 256, 256
        args.teacher_epochs, args.epochs, args.stage_epochs = 1, 2, 1
    import keras
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras_distill as kd
    from reproductions.models import accuracy as _accuracy
    from reproductions.models import cnn as build_cnn

    (x_train, y_train), (x_test, y_test) = kd.datasets.load_fashion_mnist(normalize=True)
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(x_train))[: args.train_examples]
    # The models take flat 784-pixel rows and reshape them to 28x28x1.
    x_train, y_train = x_train[pick].reshape(-1, 784), y_train[pick]
    x_test, y_test = x_test[: args.test_examples].reshape(-1, 784), y_test[: args.test_examples]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    fit = dict(batch_size=args.batch_size, verbose=0)

    keras.utils.set_random_seed(args.seed)
    teacher = build_cnn([(32, 32, 32), (64, 64, 64)], "teacher")
    teacher.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    start = time.perf_counter()
    teacher.fit(x_train, y_train, epochs=args.teacher_epochs, **fit)
    rows = [("teacher", 0, args.teacher_epochs, _accuracy(teacher, x_test, y_test), time.perf_counter() - start)]
    shapes = {"thin": [(16, 16), (32, 32)], "wide": [(32, 32), (64, 64)]}
    initial = {key: build_cnn(blocks, "student").get_weights() for key, blocks in shapes.items()}

    def student(key):
        model = build_cnn(shapes[key], "student")
        model.set_weights(initial[key])
        return model

    epochs, stage = args.epochs, args.stage_epochs
    kd_compile = dict(optimizer="adam", loss=loss, metrics=["accuracy"], alpha=0.5, temperature=4.0)

    def scratch(model):
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        model.fit(x_train, y_train, epochs=epochs, **fit)

    def distill(model):
        distiller = kd.Distiller(student=model, teacher=teacher)
        distiller.compile(**kd_compile)
        distiller.fit(x_train, y_train, epochs=epochs, **fit)

    def fitnets(model):
        distiller = kd.HintDistiller(
            student=model, teacher=teacher, hint_layer="teacher_pool1", guided_layer="student_pool1"
        )
        distiller.compile(**kd_compile)
        distiller.fit_hints(x_train, epochs=stage, **fit)
        distiller.fit(x_train, y_train, epochs=epochs - stage, **fit)

    def fsp(model):
        pairs = [
            (("teacher_conv1", "teacher_conv3"), ("student_conv1", "student_conv2")),
            (("teacher_conv4", "teacher_conv6"), ("student_conv3", "student_conv4")),
        ]
        distiller = kd.FSPDistiller(student=model, teacher=teacher, pairs=pairs)
        distiller.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        distiller.fit_fsp(x_train, epochs=stage, **fit)
        distiller.fit(x_train, y_train, epochs=epochs - stage, **fit)

    def attention(model):
        pairs = [("teacher_conv3", "student_conv2"), ("teacher_conv6", "student_conv4")]
        distiller = kd.FeatureDistiller(
            student=model, teacher=teacher, pairs=pairs, feature_loss=kd.losses.AttentionTransfer()
        )
        distiller.compile(optimizer="adam", loss=loss, metrics=["accuracy"], alpha=1.0, feature_weight=1000.0)
        distiller.fit(x_train, y_train, epochs=epochs, **fit)

    def rkd(model):
        distance = kd.FeatureDistiller(
            student=model,
            teacher=teacher,
            pairs=[("teacher_features", "student_features")],
            feature_loss=kd.losses.RKDDistance(),
        )
        distance.compile(**kd_compile, feature_weight=25.0)
        distance.fit(x_train, y_train, epochs=stage, **fit)
        angle = kd.FeatureDistiller(
            student=model,
            teacher=teacher,
            pairs=[("teacher_features", "student_features")],
            feature_loss=kd.losses.RKDAngle(),
        )
        angle.compile(**kd_compile, feature_weight=50.0)
        angle.fit(x_train, y_train, epochs=epochs - stage, **fit)

    methods = [
        ("thin student from scratch", "thin", 0, scratch),
        ("thin, Distiller (soft targets)", "thin", 0, distill),
        ("thin, HintDistiller (FitNets): hint stage + KD", "thin", stage, fitnets),
        ("thin, FeatureDistiller: attention transfer + labels", "thin", 0, attention),
        ("thin, FeatureDistiller: RKD distance then angle, + KD", "thin", 0, rkd),
        ("wide shallow student from scratch", "wide", 0, scratch),
        ("wide shallow, FSPDistiller: FSP stage + labels", "wide", stage, fsp),
    ]
    sizes = {}
    for label, key, stage_epochs, train in methods:
        keras.utils.set_random_seed(args.seed)
        model = student(key)
        sizes[key] = model.count_params()
        start = time.perf_counter()
        train(model)
        rows.append((label, stage_epochs, epochs, _accuracy(model, x_test, y_test), time.perf_counter() - start))
        print(f"{label}: {100 * rows[-1][3]:.2f}% in {rows[-1][4]:.0f} s", flush=True)

    lines = [
        f"Fashion-MNIST, {len(x_train):,} training / {len(x_test):,} test images, "
        f"backend {keras.backend.backend()}, seed {args.seed}; teacher "
        f"{teacher.count_params():,} parameters, thin student {sizes['thin']:,}, "
        f"wide shallow student {sizes['wide']:,}.",
        "",
        "| model | first-stage epochs | total epochs | test accuracy | seconds |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {100 * r[3]:.2f}% | {r[4]:.0f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(table + "\n")
    return rows


if __name__ == "__main__":
    main()
