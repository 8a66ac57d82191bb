"""The command line's jobs: the Fashion-MNIST demo and `distill` on saved models.

Both end with a results table (printed and written as markdown) and the
distilled student saved as `.keras` and exported as a SavedModel.
"""

import os
import time

import keras
import numpy as np

from keras_distill import datasets
from keras_distill.distillers.distiller import Distiller
from keras_distill.export import export_saved_model

DEMO = {
    # Hinton et al.'s MNIST teacher (2 x 1200 units with dropout) and a small
    # student; epochs sized for about 6-8 minutes on 2 CPU cores.
    "full": {"teacher_units": 1200, "student_units": 32, "teacher_epochs": 12,
             "epochs": 20, "train_size": None, "test_size": None},
    "quick": {"teacher_units": 256, "student_units": 32, "teacher_epochs": 2,
              "epochs": 3, "train_size": 6000, "test_size": 2000},
}


def build_mlp(hidden_units, *, dropout=0.0, input_dim=784, classes=10, name):
    """An MLP classifier that outputs logits."""
    layers = [keras.Input((input_dim,), name="pixels")]
    for index, units in enumerate(hidden_units):
        layers.append(keras.layers.Dense(units, activation="relu", name=f"dense_{index}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout_{index}"))
    layers.append(keras.layers.Dense(classes, name="logits"))
    return keras.Sequential(layers, name=name)


def _classifier_compile(model, learning_rate=1e-3):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _timed_fit(model, *args, **kwargs):
    start = time.perf_counter()
    history = model.fit(*args, **kwargs)
    return history, time.perf_counter() - start


def _row(label, model, x_test, y_test, seconds, batch_size):
    logits = model.predict(x_test, batch_size=batch_size, verbose=0)
    errors = int(np.sum(np.argmax(logits, axis=-1) != y_test))
    return {
        "model": label,
        "parameters": model.count_params(),
        "test errors": errors,
        "test accuracy": 1.0 - errors / len(y_test),
        "training time (s)": seconds,
    }


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


def run_demo(output="distill-output", quick=False, alpha=0.5, temperature=2.0,
             epochs=None, teacher_epochs=None, batch_size=128, seed=0,
             verbose="auto"):
    """Teacher, student from scratch and distilled student on Fashion-MNIST.

    Returns:
        The result rows (dicts), also written to `output/results.md`.
    """
    settings = dict(DEMO["quick" if quick else "full"])
    if epochs is not None:
        settings["epochs"] = epochs
    if teacher_epochs is not None:
        settings["teacher_epochs"] = teacher_epochs
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(normalize=True)
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    x_train, y_train = _subset(x_train, y_train, settings["train_size"])
    x_test, y_test = _subset(x_test, y_test, settings["test_size"])
    split = len(x_train) // 12
    x_val, y_val = x_train[-split:], y_train[-split:]
    x_train, y_train = x_train[:-split], y_train[:-split]
    fit_args = dict(batch_size=batch_size, validation_data=(x_val, y_val), verbose=verbose)

    print(f"Backend: {keras.backend.backend()}. Fashion-MNIST: {len(x_train)} "
          f"train, {len(x_val)} validation, {len(x_test)} test examples.")
    keras.utils.set_random_seed(seed)
    units = settings["teacher_units"]
    teacher = build_mlp([units, units], dropout=0.3, name="teacher")
    _classifier_compile(teacher)
    print(f"\n[1/3] Teacher {teacher.count_params():,} parameters, "
          f"{settings['teacher_epochs']} epochs")
    _, teacher_time = _timed_fit(teacher, x_train, y_train,
                                 epochs=settings["teacher_epochs"], **fit_args)

    keras.utils.set_random_seed(seed + 1)
    scratch = build_mlp([settings["student_units"]], name="student_scratch")
    _classifier_compile(scratch)
    print(f"\n[2/3] Student from scratch, {scratch.count_params():,} "
          f"parameters, {settings['epochs']} epochs")
    _, scratch_time = _timed_fit(scratch, x_train, y_train,
                                 epochs=settings["epochs"], **fit_args)

    keras.utils.set_random_seed(seed + 1)
    student = build_mlp([settings["student_units"]], name="student")
    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        alpha=alpha,
        temperature=temperature,
    )
    print(f"\n[3/3] Distilled student (alpha={alpha}, temperature="
          f"{temperature}), {settings['epochs']} epochs")
    _, distill_time = _timed_fit(distiller, x_train, y_train,
                                 epochs=settings["epochs"], **fit_args)

    rows = [
        _row("teacher", teacher, x_test, y_test, teacher_time, batch_size),
        _row("student from scratch", scratch, x_test, y_test, scratch_time, batch_size),
        _row("distilled student", student, x_test, y_test, distill_time, batch_size),
    ]
    notes = [
        f"Fashion-MNIST, {len(y_test):,} test images, backend "
        f"{keras.backend.backend()}, seed {seed}. Both students have the same "
        f"architecture, initial weights and epochs ({settings['epochs']}); the "
        f"teacher has {rows[0]['parameters'] / rows[2]['parameters']:.0f}x "
        "their parameters.",
    ]
    save_results(rows, student, output,
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


def run_distill(teacher_path, student_path, data, epochs, output, alpha=0.5,
                temperature=2.0, batch_size=128, verbose="auto"):
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
