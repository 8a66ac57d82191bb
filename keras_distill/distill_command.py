"""What `keras-distill distill` runs: a saved teacher distilled into a saved
student, a results table, the student saved and exported; with `--quantize`
/ `--export`, its deployable variants too.

`result_row`, `save_results` and `deploy_student` also serve the repository's
demo (`examples/demo.py`).
"""

import os
import shutil
import time
import warnings
import zipfile

import keras
import numpy as np

from keras_distill import datasets
from keras_distill import deploy as deployment
from keras_distill import tuning
from keras_distill._defaults import DEFAULT_ALPHA
from keras_distill._defaults import DEFAULT_TEMPERATURE
from keras_distill._training.checks.data import check_labels
from keras_distill._training.guards import guarded
from keras_distill.distillers.distiller import Distiller
from keras_distill.export import export_saved_model
from keras_distill.tables import markdown_table


def timed_fit(model, *args, **kwargs):
    start = time.perf_counter()
    with guarded(model) as guard:
        history = model.fit(*args, **guard(kwargs))
    return history, time.perf_counter() - start


def result_row(label, model, x_test, y_test, seconds, batch_size, labels=None, scratch=None):
    """A table row; `scratch` is the row of the same student from scratch,
    for the relative change in test errors."""
    # Called batch by batch rather than through `predict`: every model of a
    # table would compile a predict function of its own, and TensorFlow then
    # warns about retracing.
    logits = np.concatenate(
        [
            keras.ops.convert_to_numpy(model(x_test[start : start + batch_size], training=False))
            for start in range(0, len(x_test), batch_size)
        ]
    )
    errors = int(np.sum(np.argmax(logits, axis=-1) != y_test))
    row = {"model": label, "parameters": model.count_params()}
    if labels is not None:
        row["training labels"] = labels
    row.update(
        {
            "test errors": errors,
            "test accuracy": 1.0 - errors / len(y_test),
            "vs scratch": "-"
            if scratch is None
            else f"{100 * (errors - scratch['test errors']) / scratch['test errors']:+.1f}%",
            "training time (s)": seconds,
        }
    )
    return row


def format_table(rows):
    """Renders result rows (dicts with the same keys) as a markdown table."""
    header = list(rows[0])
    return markdown_table(header, [[_cell(key, row[key]) for key in header] for row in rows])


def _cell(key, value):
    if key == "test accuracy":
        return f"{100 * value:.2f}%"
    if key == "training time (s)":
        return "-" if value is None else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


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
        [
            f"# {title}",
            "",
            table,
            "",
            *notes,
            "",
            f"Distilled student: `{keras_path}` (Keras) and `{saved_model_path}` (SavedModel, `serve` endpoint).",
            "",
        ]
    )
    with open(os.path.join(output, "results.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    return table


def deploy_student(
    student,
    teacher,
    x_train,
    y_train,
    x_test,
    y_test,
    output,
    quantize=None,
    formats=(),
    recover_epochs=2,
    batch_size=128,
):
    """With `quantize` and/or `formats`: the student's quantized variants
    and checked exports (`keras_distill.deploy`), appended to
    `output/results.md` as one table. Returns the rows."""
    if not quantize and not formats:
        return []
    print(f"\n[+] Deployment: {quantize or 'float32'} student, formats {', '.join(formats) or 'keras only'}")
    found = deployment.variants(
        student, teacher, x_train, y_train, quantize, epochs=recover_epochs, batch_size=batch_size
    )
    directory = os.path.join(output, "deploy")
    rows = deployment.deploy(found, x_test, y_test, directory, formats)
    text = "\n".join(
        [
            "## Deployment",
            "",
            format_table(rows),
            "",
            f"Files in `{directory}`. Every exported artifact was run in its own runtime and compared with the Keras "
            "model on 64 test images before its test accuracy was measured in that runtime. "
            + (
                f"Recovery: LoRA adapters (rank 8) on the {quantize} layers, {recover_epochs} epoch(s) of distillation "
                "from the float teacher, merged. "
                if quantize
                else ""
            )
            + "Latency: median of 50 single-example runs on this machine's CPU.",
            "",
        ]
    )
    with open(os.path.join(output, "results.md"), "a") as handle:
        handle.write("\n" + text)
    print("\n" + text)
    return rows


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
                return ((data["x_train"], data["y_train"]), (data["x_test"], data["y_test"]))
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{name} cannot be read as a .npz file ({type(error).__name__}: {error}); it may be "
                "truncated. Write it again with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
            ) from None
    raise ValueError(
        f"Unknown --data. Received: {name!r}. Expected fashion_mnist, digits or the path of an existing .npz file."
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
        with warnings.catch_warnings():
            # compile=False: the file's optimizer state is not wanted, and Keras
            # warns that it skips it.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise ValueError(f"The {role} file {path!r} could not be loaded: {type(error).__name__}: {error}") from None


def _class_indices(labels, name):
    """Labels as int64 class indices, refusing what a cast would change
    (3.7 becomes 3), as the Python API refuses it."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        bad = labels[~np.isfinite(labels) | (labels != np.round(labels))]
        if bad.size:
            raise ValueError(
                f"--data: {name} holds {bad.size} label(s) that are not whole class indices, e.g. "
                f"{', '.join(f'{value:g}' for value in np.unique(bad)[:5])}; a cast would truncate them. Save "
                "integer class indices (y.astype('int64') after rounding as you intend)."
            )
    elif labels.dtype.kind not in "iub":
        raise ValueError(f"--data: {name} must hold integer class indices. Received dtype {labels.dtype}.")
    return labels.astype("int64")


def _fit_to_input(x, model):
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if shape and None not in shape and int(np.prod(shape)) == int(np.prod(x.shape[1:])):
        return x.reshape((len(x),) + shape)
    return x


def check_output(output):
    """A `ValueError` unless `output` is (or can be made) a writable
    directory: found before training, not as an `OSError` after it."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(
            f"--output {output!r} is an existing file; the results need a directory. Pass another "
            "path, e.g. --output distill-output."
        )
    existing = os.path.abspath(output)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK) or not os.path.isdir(existing):
        raise ValueError(
            f"--output {output!r} cannot be written: {existing!r} is not a writable directory. Pass a "
            "writable path, e.g. --output ./distill-output."
        )


def run_distill(
    teacher_path,
    student_path,
    data,
    epochs,
    output,
    alpha=DEFAULT_ALPHA,
    temperature=DEFAULT_TEMPERATURE,
    batch_size=128,
    tune_trials=None,
    verbose="auto",
    quantize=None,
    formats=(),
    recover_epochs=2,
):
    """Distills a saved teacher into a saved student and reports both; with
    `quantize` / `formats`, also its quantized variants and exports
    (`deploy_student`).

    With `tune_trials`, `keras_distill.tune` searches the settings in that many
    trials (fresh copies of the student's architecture, validated on the
    last tenth of the training data) instead of one run at `alpha` and
    `temperature`.

    `output` is checked to be writable before anything loads, and its
    `deploy/` folder, this command's own, is emptied: a rerun never leaves
    an earlier run's exports beside the new models."""
    check_output(output)
    previous = os.path.join(output, "deploy")
    if os.path.isdir(previous):
        shutil.rmtree(previous)
    (x_train, y_train), (x_test, y_test) = load_data(data)
    for path in (teacher_path, student_path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such model file: {path!r}. Pass a model saved with model.save('name.keras').")
    teacher, student = _load_model(teacher_path, "teacher"), _load_model(student_path, "student")
    x_train_s, x_test_s = _fit_to_input(x_train, student), _fit_to_input(x_test, student)
    x_test_t = _fit_to_input(x_test, teacher)
    if x_train_s.shape[1:] != _fit_to_input(x_train, teacher).shape[1:]:
        raise ValueError(
            "The teacher and the student take inputs of different shapes: "
            f"{teacher.inputs[0].shape} and {student.inputs[0].shape}. "
            "`keras-distill distill` feeds both the same data."
        )
    y_train, y_test = _class_indices(y_train, "y_train"), _class_indices(y_test, "y_test")
    # Every run below (the tuner's, the student on the labels alone, the
    # distiller) reads these labels: refuse bad ones before the first of them.
    classes = student.outputs[0].shape[-1] if getattr(student, "outputs", None) else None
    hard_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for labels, name in ((y_train, "y_train"), (y_test, "y_test")):
        try:
            check_labels(labels, hard_loss, classes)
        except ValueError as error:
            raise ValueError(f"--data: {name}: {error}") from None
    before = result_row("student before distillation", student, x_test_s, y_test, None, batch_size)
    rows = [result_row("teacher", teacher, x_test_t, y_test, None, batch_size), before]
    if tune_trials:
        split = len(x_train_s) // 10
        start = time.perf_counter()
        result = tuning.tune(
            lambda: keras.models.clone_model(student),
            teacher,
            x_train_s[:-split],
            y_train[:-split],
            validation_data=(x_train_s[-split:], y_train[-split:]),
            max_trials=tune_trials,
            epochs=epochs,
            batch_size=batch_size,
            directory=os.path.join(output, "tuning"),
            verbose=0,
        )
        student = result.student
        rows.append(result_row("tuned student", student, x_test_s, y_test, time.perf_counter() - start, batch_size))
        notes = [
            f"{tune_trials} trials of {epochs} epochs, best by validation accuracy, backend {keras.backend.backend()}:",
            "",
            result.table,
        ]
    else:
        # The same student from the same weights on the labels alone, for the
        # "vs scratch" column.
        alone = keras.models.clone_model(student)
        alone.set_weights(student.get_weights())
        alone.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        _, seconds = timed_fit(
            alone, x_train_s, y_train, epochs=epochs, batch_size=batch_size, verbose=verbose, validation_split=0.1
        )
        rows.append(result_row("student on the labels alone", alone, x_test_s, y_test, seconds, batch_size))
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            alpha=alpha,
            temperature=temperature,
        )
        _, seconds = timed_fit(
            distiller, x_train_s, y_train, epochs=epochs, batch_size=batch_size, verbose=verbose, validation_split=0.1
        )
        rows.append(result_row("distilled student", student, x_test_s, y_test, seconds, batch_size, scratch=rows[-1]))
        notes = [f"{epochs} epochs, alpha={alpha}, temperature={temperature}, backend {keras.backend.backend()}."]
    save_results(rows, student, output, f"keras_distill distill on {data}", notes)
    deploy_student(
        student, teacher, x_train_s, y_train, x_test_s, y_test, output, quantize, formats, recover_epochs, batch_size
    )
    return rows
