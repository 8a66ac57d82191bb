"""The command line's jobs: the Fashion-MNIST demo and `distill` on saved models.

Both end with a results table (printed and written as markdown) and the
distilled student saved as `.keras` and exported as a SavedModel.
"""

import os
import time
import zipfile

import keras
import numpy as np

from keras_distill import Distiller
from keras_distill import datasets
from keras_distill import deploy as deployment
from keras_distill import precompute_teacher_outputs
from keras_distill import tune as tune_settings
from keras_distill import with_teacher_outputs
from keras_distill._training.hyperparameters import DEFAULT_ALPHA
from keras_distill._training.hyperparameters import DEFAULT_TEMPERATURE
from keras_distill.experiments import data as experiment_data
from keras_distill.experiments import models
from keras_distill.experiments import teacher_store
from keras_distill.experiments.models import build_mlp
from keras_distill.experiments.models import compile_classifier
from keras_distill.export import export_saved_model

DEMO = {
    # Part 1: few labels. The MLP teacher (Hinton et al.'s 2 x 1200 with
    # dropout) learns from every label; a 784-32-10 student gets only
    # `labels` of them. Part 2: every label. A CNN teacher, which knows what
    # an MLP cannot learn from pixels alone, teaches a 784-800-800-10 MLP.
    # Both teachers come from the reproductions' store (trained once).
    "full": {"labels": 5000, "small_units": (32,), "epochs": 20, "temperature": 2.0,
             "large_units": (800, 800), "large_epochs": 12, "large_temperature": 4.0},
    "quick": {"labels": 1000, "small_units": (32,), "epochs": 5, "temperature": 2.0, "teacher_epochs": 3,
              "large_units": (64,), "large_epochs": 3, "large_temperature": 4.0},
}
UNLABELED = -1


def _timed_fit(model, *args, **kwargs):
    start = time.perf_counter()
    history = model.fit(*args, **kwargs)
    return history, time.perf_counter() - start


def _row(label, model, x_test, y_test, seconds, batch_size, labels=None, scratch=None):
    """A table row; `scratch` is the row of the same student from scratch,
    for the relative change in test errors."""
    logits = model.predict(x_test, batch_size=batch_size, verbose=0)
    errors = int(np.sum(np.argmax(logits, axis=-1) != y_test))
    row = {"model": label, "parameters": model.count_params()}
    if labels is not None:
        row["training labels"] = labels
    row.update({
        "test errors": errors,
        "test accuracy": 1.0 - errors / len(y_test),
        "vs scratch": "-" if scratch is None else f"{100 * (errors - scratch['test errors']) / scratch['test errors']:+.1f}%",
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
    """Prints and writes the table; saves and exports the student, which
    must have finite weights (a student trained into NaN is not saved)."""
    broken = [w.path for w in student.weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(w)))]
    if broken:
        raise ValueError(
            f"The trained student has NaN or infinite weights ({', '.join(broken[:4])}); it was not saved. "
            "Check the data for NaN and lower the learning rate."
        )
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


def deploy_student(student, teacher, x_train, y_train, x_test, y_test, output, quantize=None, formats=(),
                   recover_epochs=2, batch_size=128):
    """With `quantize` and/or `formats`: the student's quantized variants
    and checked exports (`keras_distill.deploy`), appended to
    `output/results.md` as one table. Returns the rows."""
    if not quantize and not formats:
        return []
    print(f"\n[+] Deployment: {quantize or 'float32'} student, formats {', '.join(formats) or 'keras only'}")
    found = deployment.variants(student, teacher, x_train, y_train, quantize, epochs=recover_epochs,
                                batch_size=batch_size)
    directory = os.path.join(output, "deploy")
    rows = deployment.deploy(found, x_test, y_test, directory, formats)
    text = "\n".join([
        "## Deployment", "",
        format_table(rows), "",
        f"Files in `{directory}`. Every exported artifact was run in its own runtime and compared with the Keras "
        "model on 64 test images before its test accuracy was measured in that runtime. "
        + (f"Recovery: LoRA adapters (rank 8) on the {quantize} layers, {recover_epochs} epoch(s) of distillation "
           "from the float teacher, merged. " if quantize else "")
        + "Latency: median of 50 single-example runs on this machine's CPU.", "",
    ])
    with open(os.path.join(output, "results.md"), "a") as handle:
        handle.write("\n" + text)
    print("\n" + text)
    return rows


def run_demo(output="distill-output", quick=False, alpha=None, temperature=None,
             epochs=None, teacher_epochs=None, labels=None, batch_size=128,
             seed=0, tune=None, verbose="auto", quantize=None, formats=(), recover_epochs=2):
    """Two distillations on Fashion-MNIST, each against the same student
    trained from scratch (same initial weights, batches and epochs).

    1. Few labels: an MLP teacher learns from every training label; a small
       student gets only the first `labels` of them. From scratch it can use
       just those images; distilled, it also learns from the teacher's
       outputs on every training image (the other labels are hidden from it
       with `ignore_class`). A reference row trains it on all the labels.
    2. Every label: a CNN teacher distilled into a wider MLP from the
       teacher's cached logits; with `tune`, `keras_distill.tune` also
       searches the settings for that student in `tune` trials.

    The student of part 2 is saved as `output/student.keras` and exported
    as a SavedModel; part 1's as `output/student_few_labels.keras`.

    Returns:
        The result rows (dicts), also written to `output/results.md`.
    """
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
        return _timed_fit(model, x, y, epochs=epochs, **fit_args)[1]

    print(f"Backend: {keras.backend.backend()}. Fashion-MNIST: {len(x_train):,} training images, "
          f"{len(x_val):,} validation, {len(x_test):,} test. Teachers are trained once and kept in "
          f"{teacher_store.default_directory()}.")
    print(f"\n[1/7] MLP teacher ({models.describe_teacher('mlp', data)})")
    teacher, record = models.teacher_with_record(data, seed, "mlp", overrides)
    rows = [_row("MLP teacher", teacher, x_test, y_test, record["seconds"], batch_size, len(data.x_train))]

    small_epochs = settings["epochs"]
    print(f"\n[2/7] Student 784-{_units(settings['small_units'])}-10 from scratch, {n_labels:,} labels, "
          f"{small_epochs} epochs")
    scratch = compile_classifier(student(settings["small_units"], "student_scratch"))
    seconds = fit(scratch, x_train[:n_labels], y_train[:n_labels], small_epochs)
    rows.append(_row("student from scratch", scratch, x_test, y_test, seconds, batch_size, n_labels))

    few = student(settings["small_units"], "student_few_labels")
    part_alpha = DEFAULT_ALPHA if alpha is None else alpha
    part_temperature = settings["temperature"] if temperature is None else temperature
    distiller = Distiller(student=few, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=UNLABELED),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        alpha=part_alpha,
        temperature=part_temperature,
    )
    print(f"\n[3/7] Distilled student (alpha={part_alpha}, temperature={part_temperature}), {n_labels:,} labels "
          f"+ the teacher on {len(x_train):,} images, {small_epochs} epochs")
    seconds = fit(distiller, x_train, y_partial, small_epochs)
    rows.append(_row("distilled student", few, x_test, y_test, seconds, batch_size, n_labels, rows[-1]))

    print(f"\n[4/7] Student from scratch on all {len(x_train):,} labels (reference), {small_epochs} epochs")
    reference = compile_classifier(student(settings["small_units"], "student_all_labels"))
    seconds = fit(reference, x_train, y_train, small_epochs)
    rows.append(_row("student from scratch, all labels (reference)", reference, x_test, y_test, seconds,
                     batch_size, len(x_train)))

    print(f"\n[5/7] CNN teacher ({models.describe_teacher('cnn', data)})")
    cnn, record = models.teacher_with_record(data, seed, "cnn", overrides)
    rows.append(_row("CNN teacher", cnn, x_test, y_test, record["seconds"], batch_size, len(data.x_train)))

    large_units, large_epochs = settings["large_units"], settings["large_epochs"]
    print(f"\n[6/7] Student 784-{_units(large_units)}-10 from scratch, all {len(x_train):,} labels, "
          f"{large_epochs} epochs")
    wide_scratch = compile_classifier(student(large_units, "wide_student_scratch"))
    seconds = fit(wide_scratch, x_train, y_train, large_epochs)
    rows.append(_row("wide student from scratch", wide_scratch, x_test, y_test, seconds, batch_size,
                     len(x_train)))

    wide = student(large_units, "wide_student")
    wide_alpha = DEFAULT_ALPHA if alpha is None else alpha
    wide_temperature = settings["large_temperature"] if temperature is None else temperature
    start = time.perf_counter()
    targets = with_teacher_outputs(y_train, precompute_teacher_outputs(cnn, x_train, batch_size=1000))
    val_targets = with_teacher_outputs(y_val, precompute_teacher_outputs(cnn, x_val, batch_size=1000))
    cache_seconds = time.perf_counter() - start
    distiller = Distiller(student=wide, teacher=cnn)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        alpha=wide_alpha,
        temperature=wide_temperature,
    )
    print(f"\n[7/7] Wide student distilled from the CNN (alpha={wide_alpha}, temperature={wide_temperature}), "
          f"all labels, the teacher's cached logits, {large_epochs} epochs")
    keras.utils.set_random_seed(seed + 2)
    _, seconds = _timed_fit(distiller, x_train, targets, epochs=large_epochs, batch_size=batch_size,
                            validation_data=(x_val, val_targets), verbose=verbose)
    rows.append(_row("wide student distilled from the CNN", wide, x_test, y_test, seconds + cache_seconds,
                     batch_size, len(x_train), rows[-1]))
    exported = wide
    notes = []
    if tune:
        print(f"\n[+] keras_distill.tune: {tune} trials for the wide student, validated on "
              f"{len(x_val):,} held-out images")
        start = time.perf_counter()
        result = tune_settings(
            lambda: student(large_units, "wide_student_tuned"), cnn, x_train, y_train,
            validation_data=(x_val, y_val), max_trials=tune, epochs=large_epochs, batch_size=batch_size,
            directory=os.path.join(output, "tuning"), seed=seed, verbose=0,
        )
        best = result.best
        label = ("wide student, tuned: labels only won" if best["alpha"] == 1.0 else
                 f"wide student, tuned ({best['distillation_loss']}, T={best['temperature']:g}, "
                 f"alpha={best['alpha']:g}{', standardized' if best['standardize_logits'] else ''})")
        rows.append(_row(label, result.student, x_test, y_test, time.perf_counter() - start, batch_size,
                         len(x_train), rows[-2]))
        exported = result.student
        notes += ["", f"Tuning ({tune} trials, best by validation accuracy; the teacher's pass took "
                  f"{result.teacher_seconds:.1f} s once):", "", result.table]

    os.makedirs(output, exist_ok=True)
    few.save(os.path.join(output, "student_few_labels.keras"))
    notes = [
        f"Fashion-MNIST, {len(y_test):,} test images, backend {keras.backend.backend()}, seed {seed}. "
        "\"vs scratch\" compares each distilled student with the same student trained from scratch on the "
        "same labels, with the same initial weights, batches and epochs (negative: fewer errors). Teachers "
        "stored earlier show the training time of their first run. The few-label student is saved as "
        "`student_few_labels.keras`.",
        *notes,
    ]
    save_results(rows, exported, output, "keras_distill demo: distillation on Fashion-MNIST", notes)
    deploy_student(exported, cnn, x_train, y_train, x_test, y_test, output, quantize, formats, recover_epochs,
                   batch_size)
    return rows


def _units(units):
    return "-".join(str(u) for u in units)


def load_data(name):
    """`fashion_mnist`, `digits` or a `.npz` file with x_train, y_train,
    x_test, y_test."""
    if name == "fashion_mnist":
        return datasets.load_fashion_mnist(normalize=True)
    if name == "digits":
        return datasets.load_digits(normalize=True)
    if name.endswith(".npz") and os.path.exists(name):
        try:
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
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{name} cannot be read as a .npz file ({type(error).__name__}: {error}); it may be "
                "truncated. Write it again with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
            ) from None
    raise ValueError(
        f"Unknown --data. Received: {name!r}. Expected fashion_mnist, digits "
        "or the path of an existing .npz file."
    )


def _load_model(path, role):
    """A `.keras` file as a model, or a `ValueError` that says what is wrong
    with the file (Keras reports a damaged one as "File not found")."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"The {role} file {path!r} is not a Keras model file (a .keras file is a zip archive); it may be "
            "truncated or of another format. Save the model again with model.save('name.keras')."
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise ValueError(f"The {role} file {path!r} could not be loaded: {type(error).__name__}: {error}") from None


def _fit_to_input(x, model):
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if shape and None not in shape and int(np.prod(shape)) == int(np.prod(x.shape[1:])):
        return x.reshape((len(x),) + shape)
    return x


def run_distill(teacher_path, student_path, data, epochs, output,
                alpha=DEFAULT_ALPHA, temperature=DEFAULT_TEMPERATURE,
                batch_size=128, tune=None, verbose="auto", quantize=None, formats=(), recover_epochs=2):
    """Distills a saved teacher into a saved student and reports both; with
    `quantize` / `formats`, also its quantized variants and exports
    (`deploy_student`).

    With `tune`, `keras_distill.tune` searches the settings in `tune`
    trials (fresh copies of the student's architecture, validated on the
    last tenth of the training data) instead of one run at `alpha` and
    `temperature`."""
    (x_train, y_train), (x_test, y_test) = load_data(data)
    for path in (teacher_path, student_path):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No such model file: {path!r}. Pass a model saved with "
                "model.save('name.keras')."
            )
    teacher, student = _load_model(teacher_path, "teacher"), _load_model(student_path, "student")
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
    rows = [_row("teacher", teacher, x_test_t, y_test, None, batch_size), before]
    if tune:
        split = len(x_train_s) // 10
        start = time.perf_counter()
        result = tune_settings(
            lambda: keras.models.clone_model(student), teacher, x_train_s[:-split], y_train[:-split],
            validation_data=(x_train_s[-split:], y_train[-split:]), max_trials=tune, epochs=epochs,
            batch_size=batch_size, directory=os.path.join(output, "tuning"), verbose=0,
        )
        student = result.student
        rows.append(_row("tuned student", student, x_test_s, y_test, time.perf_counter() - start, batch_size))
        notes = [f"{tune} trials of {epochs} epochs, best by validation accuracy, backend "
                 f"{keras.backend.backend()}:", "", result.table]
    else:
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
        rows.append(_row("distilled student", student, x_test_s, y_test, seconds, batch_size))
        notes = [f"{epochs} epochs, alpha={alpha}, temperature={temperature}, backend {keras.backend.backend()}."]
    save_results(rows, student, output, f"keras_distill distill on {data}", notes)
    deploy_student(student, teacher, x_train_s, y_train, x_test_s, y_test, output, quantize, formats,
                   recover_epochs, batch_size)
    return rows
