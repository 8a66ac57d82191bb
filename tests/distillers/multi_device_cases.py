"""The three trainers the multi-device tests run, each from fixed initial
weights, on one device and on two; see mirrored_script.py and
data_parallel_script.py. Imported after the backend and devices are set."""

import keras
import numpy as np

import keras_distill as kd

KINDS = ("distiller", "hint", "mutual")
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(128, 16)).astype("float32")
    y = rng.integers(0, 4, size=128)
    sample_weight = rng.uniform(0.5, 1.5, size=128).astype("float32")
    return x, y, sample_weight


def _mlp(units, name, **kwargs):
    return keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(units, activation="relu", name=f"{name}_hidden", **kwargs),
            keras.layers.Dense(4, name=f"{name}_logits"),
        ],
        name=name,
    )


def build(kind):
    """The trainer, compiled, and the list of models whose weights fix it."""
    student = _mlp(8, "student", kernel_regularizer=keras.regularizers.L2(0.01))
    if kind == "mutual":
        model = kd.MutualLearner([student, _mlp(12, "peer")], temperature=2.0)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=CE)
        return model, list(model.peers)
    teacher = _mlp(16, "teacher")
    if kind == "distiller":
        model = kd.Distiller(student=student, teacher=teacher)
        parts = [student, teacher]
    else:
        model = kd.HintDistiller(
            student=student, teacher=teacher, hint_layer="teacher_hidden", guided_layer="student_hidden"
        )
        parts = [student, teacher, *model.regressors]
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=CE,
        alpha=0.3,
        temperature=2.0,
        **({"hint_weight": 0.5} if kind == "hint" else {}),
    )
    return model, parts


def initial_weights(kind):
    keras.utils.set_random_seed(0)
    _, parts = build(kind)
    return [part.get_weights() for part in parts]


def train(kind, weights):
    """Builds the trainer (in the caller's distribution scope), sets the
    initial weights, trains, and returns histories and trained weights,
    and the student."""
    x, y, sample_weight = data()
    model, parts = build(kind)
    for part, values in zip(parts, weights):
        part.set_weights(values)
    histories = {}
    if kind == "hint":
        stage = model.fit_hints(
            x, batch_size=32, epochs=1, shuffle=False, verbose=0, optimizer=keras.optimizers.SGD(0.1)
        )
        histories.update({f"stage1_{k}": v for k, v in stage.history.items()})
    history = model.fit(x, y, sample_weight=sample_weight, batch_size=32, epochs=2, shuffle=False, verbose=0)
    histories.update(history.history)
    return {
        "history": {k: [float(v) for v in values] for k, values in histories.items()},
        "weights": [np.asarray(w).tolist() for part in parts for w in part.get_weights()],
    }, parts[0]
