"""`keras_distill.tune`: search the distillation settings with KerasTuner, and
never return a student worse than training on the labels alone."""

import hashlib
import inspect
import json
import os
import time
import warnings

import keras
import numpy as np

from keras_distill._training.checks import models as checks
from keras_distill._training.saving import load_weights
from keras_distill._validate import check_choice
from keras_distill._validate import check_int
from keras_distill.distillers.distiller import Distiller
from keras_distill.tables import markdown_table
from keras_distill.teacher_cache import precompute_teacher_outputs
from keras_distill.teacher_cache import with_teacher_outputs

SEARCHES = ("random", "hyperband")
BASELINE = "labels only (alpha = 1)"


class TuneResult:
    """What `keras_distill.tune` found.

    Attributes:
        student: The best student by the validation objective, its weights
            from its best epoch; the label-only student if no distillation
            setting beat it.
        best: The winning trial's row (a dict, see `trials`).
        trials: One dict per trial, best first: `"trial"`, the settings
            (`"alpha"`, `"distillation_loss"`, `"temperature"`,
            `"standardize_logits"`, `"width"`), `"score"` (the objective's
            best epoch), `"epochs"` and `"seconds"`. The label-only trial is
            among them (`"trial": "labels only (alpha = 1)"`).
        table: `trials` as a markdown table.
        tuner: The KerasTuner tuner (its state is in `directory`).
        teacher_seconds: The time of the one pass of the teacher over the
            training and validation data.
    """

    def __init__(self, student, trials, tuner, teacher_seconds, objective, label_only):
        self.student = student
        self._label_only = label_only
        self.trials = trials
        self.best = trials[0]
        self.tuner = tuner
        self.teacher_seconds = teacher_seconds
        self.objective = objective

    def label_only_student(self):
        """The label-only trial's student, at its best epoch (a new model)."""
        return self._label_only()

    @property
    def table(self):
        header = [
            "trial",
            "alpha",
            "distillation loss",
            "T",
            "standardized",
            "width",
            self.objective,
            "epochs",
            "seconds",
        ]
        return markdown_table(header, [_cells(row) for row in self.trials])


def _cells(row):
    labels_only = row["alpha"] == 1.0
    return [
        row["trial"],
        f"{row['alpha']:g}",
        "-" if labels_only else row["distillation_loss"],
        "-" if labels_only else f"{row['temperature']:g}",
        "-" if labels_only else ("yes" if row["standardize_logits"] else "no"),
        "-" if row["width"] is None else str(row["width"]),
        "-" if row["score"] is None else f"{row['score']:.4f}",
        str(row["epochs"]),
        "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
    ]


def tune(
    student_builder,
    teacher,
    x,
    y,
    *,
    validation_data,
    max_trials=12,
    epochs=10,
    batch_size=128,
    optimizer=None,
    loss=None,
    objective="val_accuracy",
    direction=None,
    search="random",
    alphas=(0.1, 0.3, 0.5, 0.7, 0.9),
    temperatures=(1.0, 2.0, 4.0, 8.0),
    distillation_losses=("kl", "dkd", "dist"),
    standardize=(False, True),
    widths=None,
    directory="distill-tuning",
    project_name="tune",
    overwrite=False,
    seed=0,
    verbose=1,
):
    """Searches distillation settings for a student, from cached teacher outputs.

    The teacher runs once over the training and validation data
    (`keras_distill.precompute_teacher_outputs`), so each trial costs what
    training the student alone costs. The first trial is always the student
    trained on the labels alone (alpha = 1) for the full `epochs`; the
    others are drawn by KerasTuner from `alpha`, the distillation loss, the
    temperature, logit standardization and (optionally) the student's width.
    The student returned is the best by the validation objective, so it is
    never worse on validation data than training alone. The tuner's state
    lives in `directory/project_name`: a search that is interrupted resumes
    where it stopped when called again with `overwrite=False`.

    Args:
        student_builder: A function returning a new student (logits out):
            `student_builder()`, or `student_builder(width)` when `widths`
            is given.
        teacher: The trained teacher, `keras.Model` (or a list of them).
        x, y: Training data as arrays, integer labels.
        validation_data: `(x_val, y_val)`, for the objective.
        max_trials: int >= 2, trials in all, the label-only one included
            (`search="random"`); Hyperband chooses its own number.
        epochs: Epochs per trial (Hyperband's maximum).
        batch_size: Batch size.
        optimizer: A function returning a new optimizer per trial. Defaults
            to Adam(1e-3).
        loss: The hard-label loss. Defaults to sparse cross-entropy on
            logits.
        objective: A validation metric, e.g. `"val_accuracy"`, or one of
            the distiller's losses (`"val_loss"`, `"val_student_loss"`).
        direction: `"max"` or `"min"`, whether the objective is better
            higher or lower. Defaults to `"min"` for a loss or an error
            (a name holding `loss` or `error`), else `"max"`.
        search: `"random"` (KerasTuner's `RandomSearch`) or `"hyperband"`
            (`Hyperband`, which stops the weaker trials early).
        alphas, temperatures, distillation_losses, standardize: The values
            searched.
        widths: None, or student widths to search (passed to the builder).
        directory, project_name: Where KerasTuner keeps its state.
        overwrite: Start the search afresh.
        seed: Seed of the search and of every trial's initial weights.
        verbose: As in `fit`.

    Returns:
        A `keras_distill.tuning.TuneResult`.

    Examples:

    ```python
    result = keras_distill.tune(
        lambda: make_student(), teacher, x_train, y_train,
        validation_data=(x_val, y_val), max_trials=12, epochs=10,
    )
    print(result.table)
    result.student.save("student.keras")
    ```
    """
    keras_tuner = _import_keras_tuner()
    search = check_choice(search, "search", SEARCHES)
    max_trials = check_int(
        max_trials, "max_trials", example=12, at_least=2, note="One trial is the label-only student."
    )
    epochs = check_int(epochs, "epochs", example=10, at_least=1)
    batch_size = check_int(batch_size, "batch_size", example=128, at_least=1)
    _check_arrays(x, y, validation_data)
    _check_validation(validation_data, objective)
    direction = _direction(objective, direction)
    _check_search_values(
        alphas=alphas,
        temperatures=temperatures,
        distillation_losses=distillation_losses,
        standardize=standardize,
        widths=widths,
    )
    for model in checks.as_teacher_list(teacher):
        checks.check_keras_model(model, "teacher")
    builder = TrialBuilder(
        student_builder, teacher, optimizer=optimizer, loss=loss, metric=objective[len("val_") :], seed=seed
    )
    if widths is not None and not builder.takes_width:
        raise TypeError(
            "`widths` was given, so `student_builder` must take the width: "
            "student_builder(width). Received a function of no arguments."
        )
    first_width = None if widths is None else list(widths)[0]
    student = builder.check_fresh(first_width)
    x_val, y_val = validation_data
    project = os.path.join(directory, project_name)
    settings = {
        "student": _without_names(student.get_config()),
        # More trials extend a search; "max", the only direction before there
        # was a choice, is left out so that those searches resume.
        "search": [search, epochs, batch_size, objective, seed] + ([direction] if direction != "max" else []),
        "space": [list(alphas), list(distillation_losses), [float(t) for t in temperatures], list(standardize)],
        "widths": None if widths is None else list(widths),
    }
    found = fingerprint(x, y, x_val, y_val, teacher, settings)
    check_project(project, found, overwrite)
    # Made first: with overwrite=True KerasTuner empties the project directory.
    space = SearchSpace(builder, alphas, distillation_losses, temperatures, standardize, widths)
    tuner = make_tuner(
        keras_tuner,
        search,
        space,
        objective=objective,
        direction=direction,
        max_trials=max_trials,
        epochs=epochs,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        seed=seed,
    )
    record_fingerprint(project, found)

    start = time.perf_counter()
    train_targets = with_teacher_outputs(y, precompute_teacher_outputs(teacher, x, batch_size=1000))
    val_targets = with_teacher_outputs(y_val, precompute_teacher_outputs(teacher, x_val, batch_size=1000))
    teacher_seconds = time.perf_counter() - start

    clock = TrialClock(os.path.join(project, "trial_seconds.json"), fresh=overwrite)
    baseline = _baseline(
        builder,
        widths,
        project,
        overwrite,
        (x, train_targets),
        (x_val, val_targets),
        epochs,
        batch_size,
        objective,
        direction,
        verbose,
    )
    tuner.run_trial = clock.timed(tuner.run_trial)
    tuner.search(
        x,
        train_targets,
        validation_data=(x_val, val_targets),
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
    )
    trials = collect_trials(tuner, baseline["row"], clock.seconds, widths, epochs, direction)
    if trials[0] is baseline["row"]:
        student = baseline["load"]()
    else:
        with warnings.catch_warnings():
            # KerasTuner rebuilds the best trial's distiller with a fresh
            # optimizer and loads its checkpoint; Keras warns that it skips
            # the optimizer's saved slots, which the returned student never uses.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            student = tuner.get_best_models(1)[0].student
    return TuneResult(student, trials, tuner, teacher_seconds, objective, baseline["load"])


def _check_search_values(**values):
    """Each searched argument lists at least one value: KerasTuner would
    fail on an empty `Choice` only after the label-only trial trained."""
    for name, value in values.items():
        if value is None and name == "widths":
            continue
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not list(value):
            example = {"alphas": 0.5, "temperatures": 2.0, "distillation_losses": "kl", "standardize": False}
            raise ValueError(
                f"`{name}` lists the values to search and must hold at least one. Received: {name}={value!r}. "
                f"Pass e.g. {name}=[{example.get(name, 64)!r}]."
            )


def _check_arrays(x, y, validation_data):
    """Arrays, which the search fingerprints and caches the teacher's
    outputs beside: a dataset would fail inside KerasTuner."""
    given = {"x": x, "y": y}
    if isinstance(validation_data, (tuple, list)):
        given.update(zip(("x_val", "y_val"), validation_data))
    for name, value in given.items():
        if not hasattr(value, "shape") or not hasattr(value, "dtype") or isinstance(value, keras.utils.PyDataset):
            raise TypeError(
                f"tune() takes arrays: it computes the teacher's outputs once beside them and fingerprints them "
                f"to resume a search. Received: {name} of type {type(value).__name__}. For a tf.data dataset of "
                "(x, y) batches: x, y = map(np.concatenate, zip(*dataset.as_numpy_iterator()))."
            )


def _direction(objective, direction):
    if direction is None:
        return "min" if any(word in objective for word in ("loss", "error")) else "max"
    return check_choice(direction, "direction", ("max", "min"), note="Whether the objective is better higher.")


def _check_validation(validation_data, objective):
    if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise ValueError(
            "`validation_data` must be (x_val, y_val): the trials are compared on it. "
            f"Received: validation_data={validation_data!r}. Hold out part of the "
            "training data, e.g. validation_data=(x[-5000:], y[-5000:])."
        )
    if not objective.startswith("val_"):
        raise ValueError(
            f"`objective` must be a validation metric. Received: objective={objective!r}. "
            "Use e.g. objective='val_accuracy'."
        )


class TrialBuilder:
    """Builds and compiles one trial's distiller, every trial's student
    from the same initial weights."""

    def __init__(self, student_builder, teacher, *, optimizer, loss, metric, seed):
        self.student_builder = student_builder
        self.teacher = teacher
        self.optimizer = optimizer or (lambda: keras.optimizers.Adam(1e-3))
        self.loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.metric = metric
        self.seed = seed
        self.takes_width = bool(inspect.signature(student_builder).parameters)

    def check_fresh(self, width):
        """One student, after checking that the builder makes a new model at
        each call: a builder that returns one model would train it, the
        user's own, in every trial."""
        first, second = (self._build(width) for _ in range(2))
        if first is second:
            raise ValueError(
                f"`student_builder` returned the same model {first.name!r} twice: every trial needs a new one, "
                "or the search trains your model in every trial. Build it inside the function, e.g. "
                "student_builder=lambda: keras.models.clone_model(model)."
            )
        return first

    def _build(self, width):
        model = self.student_builder(width) if self.takes_width else self.student_builder()
        checks.check_keras_model(model, "student_builder()")
        return model

    def __call__(self, alpha, distillation_loss, temperature, standardize_logits, width):
        keras.utils.set_random_seed(self.seed)
        student = self._build(width)
        distiller = Distiller(student=student, teacher=self.teacher)
        reported = self.metric in ("loss", "student_loss", "distillation_loss")
        distiller.compile(
            optimizer=self.optimizer(),
            loss=self.loss,
            metrics=[] if reported else [_metric(self.metric)],
            alpha=alpha,
            temperature=temperature,
            distillation_loss=distillation_loss,
            standardize_logits=standardize_logits,
        )
        return distiller


class SearchSpace:
    """The hypermodel KerasTuner calls with its hyperparameters: a trial's
    settings drawn from the values searched."""

    def __init__(self, builder, alphas, distillation_losses, temperatures, standardize, widths):
        self.builder = builder
        self.alphas = list(alphas)
        self.distillation_losses = list(distillation_losses)
        self.temperatures = [float(t) for t in temperatures]
        self.standardize = [bool(value) for value in standardize]
        self.widths = None if widths is None else list(widths)

    def __call__(self, hp):
        return self.builder(
            hp.Choice("alpha", self.alphas),
            hp.Choice("distillation_loss", self.distillation_losses),
            hp.Choice("temperature", self.temperatures),
            bool(hp.Choice("standardize_logits", self.standardize)),
            None if self.widths is None else hp.Choice("width", self.widths),
        )


def fingerprint(x, y, x_val, y_val, teacher, settings):
    """What a search's results depend on, as a dict of digests: the data,
    the teachers' weights and the settings."""

    def digest(*arrays):
        hasher = hashlib.sha256()
        for array in arrays:
            array = np.ascontiguousarray(keras.ops.convert_to_numpy(array))
            hasher.update(f"{array.dtype}{array.shape}".encode())
            hasher.update(array.tobytes())
        return hasher.hexdigest()

    teachers = checks.as_teacher_list(teacher)
    return {
        "training data": digest(x, y),
        "validation data": digest(x_val, y_val),
        "teacher weights": digest(*[weight for model in teachers for weight in model.get_weights()]),
        "settings": hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest(),
    }


def _without_names(config):
    """A model config without its layers' names, which Keras numbers per
    process (`input_layer_3`)."""
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key not in ("name", "build_config")}
    if isinstance(config, list):
        return [_without_names(value) for value in config]
    return config


def check_project(project, found, overwrite):
    """Refuses to resume a search whose results were computed on other data,
    another teacher or other settings."""
    path = os.path.join(project, "fingerprint.json")
    if not overwrite and os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
        changed = [key for key in found if stored.get(key) != found[key]]
        if changed:
            raise ValueError(
                f"The tuning project {project!r} holds a search run with other {', '.join(changed)}; resuming it "
                "would mix its trials (and its label-only score) with this one's. Pass overwrite=True to start "
                "afresh, or another `directory` or `project_name`."
            )


def record_fingerprint(project, found):
    """Records what the search in `project` depends on (`fingerprint`)."""
    os.makedirs(project, exist_ok=True)
    with open(os.path.join(project, "fingerprint.json"), "w") as f:
        json.dump(found, f)


def make_tuner(
    keras_tuner,
    search,
    hypermodel,
    *,
    objective,
    direction,
    max_trials,
    epochs,
    directory,
    project_name,
    overwrite,
    seed,
):
    """KerasTuner's `RandomSearch` (`max_trials - 1` trials besides the
    label-only one) or `Hyperband`, optimizing `objective` in `direction`."""
    if search == "random":
        tuner_class, options = keras_tuner.RandomSearch, {"max_trials": max_trials - 1}
    else:
        tuner_class, options = keras_tuner.Hyperband, {"max_epochs": epochs, "factor": 3}
    return tuner_class(
        hypermodel,
        objective=keras_tuner.Objective(objective, direction=direction),
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        seed=seed,
        **options,
    )


class TrialClock:
    """Each trial's wall time, kept in a JSON file beside the tuner's state
    so that a resumed search keeps the times of its earlier trials."""

    def __init__(self, path, *, fresh):
        self.path = path
        self.seconds = {}
        if not fresh and os.path.exists(path):
            with open(path) as f:
                self.seconds = json.load(f)

    def timed(self, run_trial):
        def timed_run_trial(trial, *args, **kwargs):
            start = time.perf_counter()
            result = run_trial(trial, *args, **kwargs)
            self.seconds[trial.trial_id] = time.perf_counter() - start
            with open(self.path, "w") as f:
                json.dump(self.seconds, f)
            return result

        return timed_run_trial


def collect_trials(tuner, baseline_row, seconds, widths, epochs, direction="max"):
    """Every trial's row, the label-only one included, best first (a trial
    without a score last)."""
    trials = [baseline_row] + [_row(trial, seconds, widths, epochs) for trial in tuner.oracle.trials.values()]
    sign = -1.0 if direction == "max" else 1.0
    trials.sort(key=lambda row: (row["score"] is None, 0.0 if row["score"] is None else sign * row["score"]))
    return trials


def _import_keras_tuner():
    try:
        import keras_tuner
    except ImportError as error:
        raise ImportError(
            "keras_distill.tune searches with KerasTuner, which is not installed. "
            "Install it with `pip install keras-tuner` (or `pip install keras-distill[tune]`)."
        ) from error
    return keras_tuner


def _metric(name):
    if name in ("accuracy", "acc"):
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    return name


def _baseline(
    builder, widths, project, overwrite, train, validation, epochs, batch_size, objective, direction, verbose
):
    """The label-only student, trained once for the full epochs and kept in
    the project directory (its best epoch's weights and score)."""
    width = None if widths is None else list(widths)[-1]
    weights_path = os.path.join(project, "labels_only.weights.h5")
    record_path = os.path.join(project, "labels_only.json")

    def new():
        return builder(1.0, "kl", 1.0, False, width)

    def load():
        distiller = new()
        load_weights(distiller, weights_path)
        return distiller.student

    if overwrite or not os.path.exists(record_path):
        distiller = new()
        checkpoint = keras.callbacks.ModelCheckpoint(
            weights_path, monitor=objective, mode=direction, save_best_only=True, save_weights_only=True
        )
        start = time.perf_counter()
        history = distiller.fit(
            *train,
            validation_data=validation,
            epochs=epochs,
            batch_size=batch_size,
            callbacks=[checkpoint],
            verbose=verbose,
        )
        best = max if direction == "max" else min
        record = {"score": best(history.history[objective]), "seconds": time.perf_counter() - start}
        with open(record_path, "w") as f:
            json.dump(record, f)
    with open(record_path) as f:
        record = json.load(f)
    row = {
        "trial": BASELINE,
        "alpha": 1.0,
        "distillation_loss": "kl",
        "temperature": 1.0,
        "standardize_logits": False,
        "width": width,
        "score": record["score"],
        "epochs": epochs,
        "seconds": record["seconds"],
    }
    return {"row": row, "load": load}


def _row(trial, seconds, widths, epochs):
    values = trial.hyperparameters.values
    if "tuner/epochs" in values:  # Hyperband: the epochs this trial ran
        epochs = values["tuner/epochs"] - values.get("tuner/initial_epoch", 0)
    return {
        "trial": trial.trial_id,
        "alpha": values["alpha"],
        "distillation_loss": values["distillation_loss"],
        "temperature": values["temperature"],
        "standardize_logits": bool(values["standardize_logits"]),
        "width": values.get("width") if widths is not None else None,
        "score": trial.score,
        "epochs": epochs,
        "seconds": seconds.get(trial.trial_id),
    }
