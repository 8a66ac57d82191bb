"""The command line's jobs: the Fashion-MNIST demo and `distill` on saved models.

Both end with a results table (printed and written as markdown) and the
distilled student saved as `.keras` and exported as a SavedModel.
"""

import os
import time

import keras
import numpy as np

from keras_distill import Distiller
from keras_distill import datasets
from keras_distill._training.hyperparameters import DEFAULT_ALPHA
from keras_distill._training.hyperparameters import DEFAULT_TEMPERATURE
from keras_distill.experiments.models import build_mlp
from keras_distill.experiments.models import compile_classifier
from keras_distill.export import export_saved_model

DEMO = {
    # Hinton et al.'s MNIST teacher (2 x 1200 units with dropout), a small
    # student, and few labels for the students: about 5-6 minutes on 2 CPU
    # cores with JAX.
    "full": {"teacher_units": 1200, "student_units": 32, "teacher_epochs": 20,
             "epochs": 20, "labels": 5000, "train_size": None, "test_size": None},
    "quick": {"teacher_units": 256, "student_units": 32, "teacher_epochs": 2,
              "epochs": 3, "labels": 1000, "train_size": 6000, "test_size": 2000},
}
UNLABELED = -1


def _timed_fit(model, *args, **kwargs):
    start = time.perf_counter()
    history = model.fit(*args, **kwargs)
    return history, time.perf_counter() - start


def _row(label, model, x_test, y_test, seconds, batch_size, labels=None):
    logits = model.predict(x_test, batch_size=batch_size, verbose=0)
    errors = int(np.sum(np.argmax(logits, axis=-1) != y_test))
    row = {"model": label, "parameters": model.count_params()}
    if labels is not None:
        row["training labels"] = labels
    row.update({
        "test errors": errors,
        "test accuracy": 1.0 - errors / len(y_test),
        "training time (s)": seconds,
    })
    return row


def format_table(rows):
    """Renders result rows as a markdown table."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = []
        for key in header:
            value = row[key]
            if key == "test accuracy":
                cells.append(f"{100 * value:.2f}%")
            elif key == "training time (s)":
                cells.append("-" if value is None else f"{value:.1f}")
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_results(rows, student, output, title, notes=()):
    """Prints and writes the table; saves and exports the student."""
    os.makedirs(output, exist_ok=True)
    table = format_table(rows)
    keras_path = os.path.join(output, "student.keras")
    saved_model_path = os.path.join(output, "student_savedmodel")
    student.save(keras_path)
    export_saved_model(student, saved_model_path)
    text = "\n".join(
        [f"# {title}", "", table, "", *notes, "",
         f"Distilled student: `{keras_path}` (Keras) and "
         f"`{saved_model_path}` (SavedModel, `serve` endpoint).", ""]
    )
    with open(os.path.join(output, "results.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    return table


def _subset(x, y, size):
    return (x, y) if size is None else (x[:size], y[:size])


def run_demo(output="distill-output", quick=False, alpha=DEFAULT_ALPHA,
             temperature=DEFAULT_TEMPERATURE,
             epochs=None, teacher_epochs=None, labels=None, batch_size=128,
             seed=0, verbose="auto"):
    """Teacher, students from scratch and a distilled student on Fashion-MNIST.

    The teacher learns from every training label. The small student gets
    only the first `labels` of them: from scratch it can use just those
    images; distilled, it also learns from the teacher's outputs on every
    training image (the others' labels are hidden from it with
    `ignore_class`). A last row trains the student from scratch on all the
    labels, for reference.

    Returns:
        The result rows (dicts), also written to `output/results.md`.
    """
    settings = dict(DEMO["quick" if quick else "full"])
    for key, value in (("epochs", epochs), ("teacher_epochs", teacher_epochs), ("labels", labels)):
        if value is not None:
            settings[key] = value
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(normalize=True)
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    x_train, y_train = _subset(x_train, y_train, settings["train_size"])
    x_test, y_test = _subset(x_test, y_test, settings["test_size"])
    split = len(x_train) // 12
    x_val, y_val = x_train[-split:], y_train[-split:]
    x_train, y_train = x_train[:-split], y_train[:-split]
    n_labels = min(settings["labels"], len(x_train))
    y_partial = y_train.copy()
    y_partial[n_labels:] = UNLABELED
    fit_args = dict(batch_size=batch_size, validation_data=(x_val, y_val), verbose=verbose)
    student_epochs = settings["epochs"]

    print(f"Backend: {keras.backend.backend()}. Fashion-MNIST: {len(x_train):,} "
          f"training images ({n_labels:,} of them labeled for the students), "
          f"{len(x_val):,} validation, {len(x_test):,} test.")
    keras.utils.set_random_seed(seed)
    units = settings["teacher_units"]
    teacher = build_mlp([units, units], dropout=0.3, name="teacher")
    compile_classifier(teacher)
    print(f"\n[1/4] Teacher, {teacher.count_params():,} parameters, "
          f"{len(x_train):,} labels, {settings['teacher_epochs']} epochs")
    _, teacher_time = _timed_fit(teacher, x_train, y_train,
                                 epochs=settings["teacher_epochs"], **fit_args)

    def student(name):
        keras.utils.set_random_seed(seed + 1)  # same initial weights for all
        return build_mlp([settings["student_units"]], name=name)

    scratch = student("student_scratch")
    compile_classifier(scratch)
    print(f"\n[2/4] Student from scratch, {scratch.count_params():,} "
          f"parameters, {n_labels:,} labels, {student_epochs} epochs")
    _, scratch_time = _timed_fit(scratch, x_train[:n_labels], y_train[:n_labels],
                                 epochs=student_epochs, **fit_args)

    distilled = student("student")
    distiller = Distiller(student=distilled, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=UNLABELED),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        alpha=alpha,
        temperature=temperature,
    )
    print(f"\n[3/4] Distilled student (alpha={alpha}, temperature="
          f"{temperature}), {n_labels:,} labels + the teacher on "
          f"{len(x_train):,} images, {student_epochs} epochs")
    _, distill_time = _timed_fit(distiller, x_train, y_partial,
                                 epochs=student_epochs, **fit_args)

    reference = student("student_all_labels")
    compile_classifier(reference)
    print(f"\n[4/4] Student from scratch on all {len(x_train):,} labels "
          f"(reference), {student_epochs} epochs")
    _, reference_time = _timed_fit(reference, x_train, y_train,
                                   epochs=student_epochs, **fit_args)

    rows = [
        _row("teacher", teacher, x_test, y_test, teacher_time, batch_size,
             len(x_train)),
        _row("student from scratch", scratch, x_test, y_test, scratch_time,
             batch_size, n_labels),
        _row("distilled student", distilled, x_test, y_test, distill_time,
             batch_size, n_labels),
        _row("student from scratch, all labels (reference)", reference, x_test,
             y_test, reference_time, batch_size, len(x_train)),
    ]
    notes = [
        f"Fashion-MNIST, {len(y_test):,} test images, backend "
        f"{keras.backend.backend()}, seed {seed}. The students share one "
        f"architecture, initial weights and {student_epochs} epochs; the "
        f"teacher has {rows[0]['parameters'] / rows[2]['parameters']:.0f}x "
        f"their parameters. The distilled student sees the same "
        f"{n_labels:,} labels as the student from scratch, plus the "
        f"teacher's soft targets on all {len(x_train):,} training images.",
    ]
    save_results(rows, distilled, output,
                 "keras_distill demo: distillation on Fashion-MNIST", notes)
    return rows


def load_data(name):
    """`fashion_mnist`, `digits` or a `.npz` file with x_train, y_train,
    x_test, y_test."""
    if name == "fashion_mnist":
        return datasets.load_fashion_mnist(normalize=True)
    if name == "digits":
        return datasets.load_digits(normalize=True)
    if name.endswith(".npz") and os.path.exists(name):
        with np.load(name) as data:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
            if missing:
                raise ValueError(
                    f"{name} lacks the arrays {sorted(missing)}. Expected a "
                    ".npz file with x_train, y_train, x_test and y_test, e.g. "
                    "np.savez(path, x_train=..., y_train=..., x_test=..., "
                    "y_test=...)."
                )
            return ((data["x_train"], data["y_train"]),
                    (data["x_test"], data["y_test"]))
    raise ValueError(
        f"Unknown --data. Received: {name!r}. Expected fashion_mnist, digits "
        "or the path of an existing .npz file."
    )


def _fit_to_input(x, model):
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if shape and None not in shape and int(np.prod(shape)) == int(np.prod(x.shape[1:])):
        return x.reshape((len(x),) + shape)
    return x


def run_distill(teacher_path, student_path, data, epochs, output,
                alpha=DEFAULT_ALPHA, temperature=DEFAULT_TEMPERATURE,
                batch_size=128, verbose="auto"):
    """Distills a saved teacher into a saved student and reports both."""
    (x_train, y_train), (x_test, y_test) = load_data(data)
    for path in (teacher_path, student_path):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No such model file: {path!r}. Pass a model saved with "
                "model.save('name.keras')."
            )
    teacher = keras.saving.load_model(teacher_path, compile=False)
    student = keras.saving.load_model(student_path, compile=False)
    x_train_s, x_test_s = _fit_to_input(x_train, student), _fit_to_input(x_test, student)
    x_test_t = _fit_to_input(x_test, teacher)
    if x_train_s.shape[1:] != _fit_to_input(x_train, teacher).shape[1:]:
        raise ValueError(
            "The teacher and the student take inputs of different shapes: "
            f"{teacher.inputs[0].shape} and {student.inputs[0].shape}. "
            "`keras-distill distill` feeds both the same data."
        )
    y_train = np.asarray(y_train).astype("int64")
    y_test = np.asarray(y_test).astype("int64")
    before = _row("student before distillation", student, x_test_s, y_test, None, batch_size)
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        alpha=alpha, temperature=temperature,
    )
    _, seconds = _timed_fit(distiller, x_train_s, y_train, epochs=epochs,
                            batch_size=batch_size, verbose=verbose,
                            validation_split=0.1)
    rows = [
        _row("teacher", teacher, x_test_t, y_test, None, batch_size),
        before,
        _row("distilled student", student, x_test_s, y_test, seconds, batch_size),
    ]
    save_results(rows, student, output, f"keras_distill distill on {data}",
                 [f"{epochs} epochs, alpha={alpha}, temperature={temperature}, "
                  f"backend {keras.backend.backend()}."])
    return rows
