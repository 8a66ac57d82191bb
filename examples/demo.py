"""The main job: two distillations on Fashion-MNIST, each against the same
student trained from scratch, ending with a results table and an exported
student.

    python examples/demo.py [--quick] [--backend tensorflow] [--tune 8] [--quantize int8] [--export onnx]

(`make demo` runs it with everything installed.) It imports `keras_distill`
as any user does; the teachers and the MLP builder are the reproductions'
(`reproductions/`), trained once and kept in the teacher store.
"""

import argparse
import logging
import os
import sys
import time

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BACKENDS = ("tensorflow", "jax", "torch")
ALPHA = 0.5  # keras_distill.Distiller's default


DEMO = {
    # Part 1: few labels. The MLP teacher (Hinton et al.'s 2 x 1200 with
    # dropout) learns from every label; a 784-32-10 student gets only
    # `labels` of them. Part 2: every label. A CNN teacher, which knows what
    # an MLP cannot learn from pixels alone, teaches a 784-800-800-10 MLP.
    # Both teachers come from the reproductions' store (trained once).
    "full": {
        "labels": 5000,
        "small_units": (32,),
        "epochs": 20,
        "temperature": 2.0,
        "large_units": (800, 800),
        "large_epochs": 12,
        "large_temperature": 4.0,
    },
    "quick": {
        "labels": 1000,
        "small_units": (32,),
        "epochs": 5,
        "temperature": 2.0,
        "teacher_epochs": 3,
        "large_units": (64,),
        "large_epochs": 3,
        "large_temperature": 4.0,
    },
}
UNLABELED = -1


def run_demo(
    output="distill-output",
    quick=False,
    alpha=None,
    temperature=None,
    epochs=None,
    teacher_epochs=None,
    labels=None,
    batch_size=128,
    seed=0,
    tune_trials=None,
    verbose="auto",
    quantize=None,
    formats=(),
    recover_epochs=2,
):
    """Two distillations on Fashion-MNIST, each against the same student
    trained from scratch (same initial weights, batches and epochs).

    1. Few labels: an MLP teacher learns from every training label; a small
       student gets only the first `labels` of them. From scratch it can use
       just those images; distilled, it also learns from the teacher's
       outputs on every training image (the other labels are hidden from it
       with `ignore_class`). A reference row trains it on all the labels.
    2. Every label: a CNN teacher distilled into a wider MLP from the
       teacher's cached logits; with `tune`, `keras_distill.tune` also
       searches the settings for that student in `tune_trials` trials.

    The student of part 2 is saved as `output/student.keras` and exported
    as a SavedModel; part 1's as `output/student_few_labels.keras`.

    Returns:
        The result rows (dicts), also written to `output/results.md`.
    """
    # Imported here: the backend is chosen on the command line first.
    import keras

    import keras_distill as kd
    from keras_distill import distill_command as command
    from reproductions import data as experiment_data
    from reproductions import models
    from reproductions import teacher_store
    from reproductions.models import build_mlp
    from reproductions.models import compile_classifier

    settings = dict(DEMO["quick" if quick else "full"])
    for key, value in (("epochs", epochs), ("labels", labels)):
        if value is not None:
            settings[key] = value
    teacher_epochs = settings.get("teacher_epochs") if teacher_epochs is None else teacher_epochs
    overrides = {} if teacher_epochs is None else {"epochs": teacher_epochs}
    data = experiment_data.load(quick)
    split = len(data.x_train) // 12
    x_val, y_val = data.x_train[-split:], data.y_train[-split:]
    x_train, y_train = data.x_train[:-split], data.y_train[:-split]
    x_test, y_test = data.x_test, data.y_test
    n_labels = min(settings["labels"], len(x_train))
    y_partial = y_train.copy()
    y_partial[n_labels:] = UNLABELED
    fit_args = dict(batch_size=batch_size, validation_data=(x_val, y_val), verbose=verbose)

    def student(units, name):
        keras.utils.set_random_seed(seed + 1)  # the same initial weights for each compared run
        return build_mlp(list(units), name=name)

    def fit(model, x, y, epochs):
        keras.utils.set_random_seed(seed + 2)  # the same batches for each compared run
        return command.timed_fit(model, x, y, epochs=epochs, **fit_args)[1]

    print(
        f"Backend: {keras.backend.backend()}. Fashion-MNIST: {len(x_train):,} training images, "
        f"{len(x_val):,} validation, {len(x_test):,} test. Teachers are trained once and kept in "
        f"{teacher_store.default_directory()}."
    )
    print(f"\n[1/7] MLP teacher ({models.describe_teacher('mlp', data)})")
    teacher, record = models.teacher_with_record(data, seed, "mlp", overrides)
    rows = [
        command.result_row("MLP teacher", teacher, x_test, y_test, record["seconds"], batch_size, len(data.x_train))
    ]

    small_epochs = settings["epochs"]
    print(
        f"\n[2/7] Student 784-{_units(settings['small_units'])}-10 from scratch, {n_labels:,} labels, "
        f"{small_epochs} epochs"
    )
    scratch = compile_classifier(student(settings["small_units"], "student_scratch"))
    seconds = fit(scratch, x_train[:n_labels], y_train[:n_labels], small_epochs)
    rows.append(command.result_row("student from scratch", scratch, x_test, y_test, seconds, batch_size, n_labels))

    few = student(settings["small_units"], "student_few_labels")
    part_alpha = ALPHA if alpha is None else alpha
    part_temperature = settings["temperature"] if temperature is None else temperature
    distiller = kd.Distiller(student=few, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=UNLABELED),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        alpha=part_alpha,
        temperature=part_temperature,
    )
    print(
        f"\n[3/7] Distilled student (alpha={part_alpha}, temperature={part_temperature}), {n_labels:,} labels "
        f"+ the teacher on {len(x_train):,} images, {small_epochs} epochs"
    )
    seconds = fit(distiller, x_train, y_partial, small_epochs)
    rows.append(command.result_row("distilled student", few, x_test, y_test, seconds, batch_size, n_labels, rows[-1]))

    print(f"\n[4/7] Student from scratch on all {len(x_train):,} labels (reference), {small_epochs} epochs")
    reference = compile_classifier(student(settings["small_units"], "student_all_labels"))
    seconds = fit(reference, x_train, y_train, small_epochs)
    rows.append(
        command.result_row(
            "student from scratch, all labels (reference)", reference, x_test, y_test, seconds, batch_size, len(x_train)
        )
    )

    print(f"\n[5/7] CNN teacher ({models.describe_teacher('cnn', data)})")
    cnn, record = models.teacher_with_record(data, seed, "cnn", overrides)
    rows.append(
        command.result_row("CNN teacher", cnn, x_test, y_test, record["seconds"], batch_size, len(data.x_train))
    )

    large_units, large_epochs = settings["large_units"], settings["large_epochs"]
    print(
        f"\n[6/7] Student 784-{_units(large_units)}-10 from scratch, all {len(x_train):,} labels, {large_epochs} epochs"
    )
    wide_scratch = compile_classifier(student(large_units, "wide_student_scratch"))
    seconds = fit(wide_scratch, x_train, y_train, large_epochs)
    rows.append(
        command.result_row("wide student from scratch", wide_scratch, x_test, y_test, seconds, batch_size, len(x_train))
    )

    wide = student(large_units, "wide_student")
    wide_alpha = ALPHA if alpha is None else alpha
    wide_temperature = settings["large_temperature"] if temperature is None else temperature
    start = time.perf_counter()
    targets = kd.with_teacher_outputs(y_train, kd.precompute_teacher_outputs(cnn, x_train, batch_size=1000))
    val_targets = kd.with_teacher_outputs(y_val, kd.precompute_teacher_outputs(cnn, x_val, batch_size=1000))
    cache_seconds = time.perf_counter() - start
    distiller = kd.Distiller(student=wide, teacher=cnn)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        alpha=wide_alpha,
        temperature=wide_temperature,
    )
    print(
        f"\n[7/7] Wide student distilled from the CNN (alpha={wide_alpha}, temperature={wide_temperature}), "
        f"all labels, the teacher's cached logits, {large_epochs} epochs"
    )
    keras.utils.set_random_seed(seed + 2)
    _, seconds = command.timed_fit(
        distiller,
        x_train,
        targets,
        epochs=large_epochs,
        batch_size=batch_size,
        validation_data=(x_val, val_targets),
        verbose=verbose,
    )
    rows.append(
        command.result_row(
            "wide student distilled from the CNN",
            wide,
            x_test,
            y_test,
            seconds + cache_seconds,
            batch_size,
            len(x_train),
            rows[-1],
        )
    )
    exported = wide
    notes = []
    if tune_trials:
        print(
            f"\n[+] keras_distill.tune: {tune_trials} trials for the wide student, validated on "
            f"{len(x_val):,} held-out images"
        )
        start = time.perf_counter()
        result = kd.tune(
            lambda: student(large_units, "wide_student_tuned"),
            cnn,
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            max_trials=tune_trials,
            epochs=large_epochs,
            batch_size=batch_size,
            directory=os.path.join(output, "tuning"),
            seed=seed,
            verbose=0,
        )
        best = result.best
        label = (
            "wide student, tuned: labels only won"
            if best["alpha"] == 1.0
            else f"wide student, tuned ({best['distillation_loss']}, T={best['temperature']:g}, "
            f"alpha={best['alpha']:g}{', standardized' if best['standardize_logits'] else ''})"
        )
        rows.append(
            command.result_row(
                label, result.student, x_test, y_test, time.perf_counter() - start, batch_size, len(x_train), rows[-2]
            )
        )
        exported = result.student
        notes += [
            "",
            f"Tuning ({tune_trials} trials, best by validation accuracy; the teacher's pass took "
            f"{result.teacher_seconds:.1f} s once):",
            "",
            result.table,
        ]

    os.makedirs(output, exist_ok=True)
    few.save(os.path.join(output, "student_few_labels.keras"))
    notes = [
        f"Fashion-MNIST, {len(y_test):,} test images, backend {keras.backend.backend()}, seed {seed}. "
        '"vs scratch" compares each distilled student with the same student trained from scratch on the '
        "same labels, with the same initial weights, batches and epochs (negative: fewer errors). Teachers "
        "stored earlier show the training time of their first run. The few-label student is saved as "
        "`student_few_labels.keras`.",
        *notes,
    ]
    title = "keras_distill demo: distillation on Fashion-MNIST"
    if quick:
        title = "keras_distill demo, quick mode: a smoke test of the pipeline, not a result"
        notes.insert(
            0,
            f"**Quick mode**: {len(x_train):,} training images, a few epochs and teachers trained for "
            f"{teacher_epochs} epoch(s): it checks that every step runs. The teachers are undertrained, so "
            "these numbers say nothing about distillation; `python examples/demo.py` (without --quick) "
            "measures it.",
        )
    command.save_results(rows, exported, output, title, notes)
    command.deploy_student(
        exported, cnn, x_train, y_train, x_test, y_test, output, quantize, formats, recover_epochs, batch_size
    )
    return rows


def _units(units):
    return "-".join(str(u) for u in units)


def at_least(minimum):
    """An argparse type: an int >= `minimum`, refused with exit code 2."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}. Received: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}. Received: {value}")
        return value

    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python examples/demo.py",
        description="Teachers and students on Fashion-MNIST: distill with few labels and with every label, "
        "compare each student with the same one trained from scratch, save and export the student.",
        epilog="Example: python examples/demo.py --quick --backend tensorflow --output distill-output",
    )
    parser.add_argument("--backend", choices=BACKENDS, help="Keras backend (default: $KERAS_BACKEND, else tensorflow).")
    parser.add_argument(
        "--output",
        default="distill-output",
        help="Directory for results.md, student.keras and student_savedmodel/ (default: ./distill-output).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="A small subset and few epochs (about a minute): a smoke test of the pipeline, not a result.",
    )
    parser.add_argument("--alpha", type=float, help=f"Weight of the hard-label loss (default {ALPHA}).")
    parser.add_argument(
        "--temperature", type=float, help="Softmax temperature (default 2.0 with few labels, 4.0 with all)."
    )
    parser.add_argument("--epochs", type=at_least(1), help="Epochs of the few-label students (default 20; quick: 5).")
    parser.add_argument(
        "--teacher-epochs",
        type=at_least(1),
        help="Teacher epochs (default: the reproductions' teachers, 15 for the MLP and 10 for the CNN; quick: 3).",
    )
    parser.add_argument(
        "--labels",
        type=at_least(1),
        help="Training labels the few-label students get (default 5000; quick: 1000). The teachers get them all.",
    )
    parser.add_argument("--batch-size", type=at_least(1), default=128, help="Batch size of every fit (default 128).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the initial weights and batches (default 0).")
    parser.add_argument(
        "--tune",
        type=at_least(2),
        metavar="N",
        help="Also search the wide student's settings in N trials with keras_distill.tune.",
    )
    parser.add_argument(
        "--quantize",
        choices=("int8", "int4"),
        help="Also quantize the student, post-training and recovered by distillation, and report both.",
    )
    parser.add_argument(
        "--recover-epochs",
        type=at_least(1),
        default=2,
        help="Epochs of distillation that recover the quantized student (default 2).",
    )
    parser.add_argument(
        "--export",
        dest="formats",
        default="",
        metavar="FORMATS",
        help="Also export every variant to these comma-separated formats (tf_saved_model, onnx, "
        "litert), each checked in its own runtime.",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    # TensorFlow logs a retracing note each time a new model predicts: not a
    # warning a reader of this table can act on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    os.environ.setdefault("KERAS_BACKEND", args.backend or "tensorflow")
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    run_demo(
        output=args.output,
        quick=args.quick,
        alpha=args.alpha,
        temperature=args.temperature,
        epochs=args.epochs,
        teacher_epochs=args.teacher_epochs,
        labels=args.labels,
        batch_size=args.batch_size,
        seed=args.seed,
        tune_trials=args.tune,
        quantize=args.quantize,
        formats=[name for name in args.formats.split(",") if name],
        recover_epochs=args.recover_epochs,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
