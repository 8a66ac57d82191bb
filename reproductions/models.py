"""The reproductions' models, their training and their scores.

Every model takes flattened 28x28 images, `(batch, 784)`; the CNNs reshape
them first, so that any teacher distills into any student on the same data.
The teachers are trained once per machine (`teacher_store`) and shared by
the experiments, the demo and the benchmarks.
"""

import hashlib

import keras
import numpy as np

import keras_distill as kd
from reproductions import teacher_store

# The teachers, trained on every label, Adam 1e-3:
# - "mlp": Hinton et al.'s MNIST teacher, two hidden layers of 1200 units
#   with dropout; on Fashion-MNIST it is barely better than its students;
# - "cnn": four 3x3 convolutions (32-32 | 64-64) with dropout, a Dense(256)
#   head: an inductive bias the MLP students lack (about 7% test error);
# - "ensemble": four 784-800-800-10 MLPs with dropout 0.2, each from its own
#   seed, averaged (Hinton et al.'s "ensemble of separately trained models").
TEACHERS = {
    "mlp": {
        "full": {"units": 1200, "dropout": 0.3, "epochs": 15, "batch_size": 256},
        "quick": {"units": 64, "dropout": 0.3, "epochs": 1, "batch_size": 128},
    },
    "cnn": {
        "full": {
            "blocks": ((32, 32), (64, 64)),
            "dense": 256,
            "block_dropout": 0.25,
            "dropout": 0.5,
            "epochs": 10,
            "batch_size": 128,
        },
        "quick": {
            "blocks": ((8,), (16,)),
            "dense": 32,
            "block_dropout": 0.25,
            "dropout": 0.5,
            "epochs": 1,
            "batch_size": 128,
        },
    },
    "ensemble": {
        "full": {"members": 4, "units": (800, 800), "dropout": 0.2, "epochs": 12, "batch_size": 128},
        "quick": {"members": 2, "units": (32,), "dropout": 0.2, "epochs": 1, "batch_size": 128},
    },
}
_trained = {}


def build_mlp(hidden_units, *, dropout=0.0, input_dim=784, classes=10, name):
    """An MLP classifier that outputs logits."""
    layers = [keras.Input((input_dim,), name="pixels")]
    for index, units in enumerate(hidden_units):
        layers.append(keras.layers.Dense(units, activation="relu", name=f"dense_{index}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout_{index}"))
    layers.append(keras.layers.Dense(classes, name="logits"))
    return keras.Sequential(layers, name=name)


def compile_classifier(model, learning_rate=1e-3):
    """Adam, cross-entropy on logits and accuracy; returns `model`."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def mlp(hidden_units, name, dropout=0.0):
    """784 -> hidden_units -> 10 logits; layers `dense_i` and `logits`."""
    return build_mlp(list(hidden_units), dropout=dropout, name=name)


def cnn(blocks, name, *, dense=None, block_dropout=0.0, dropout=0.0):
    """Flat 784 inputs reshaped to 28x28x1, then 3x3 `same` convolutions
    `{name}_conv{i}` in blocks, each max-pooled (`{name}_pool{b}`), then an
    optional Dense head and 10 logits."""
    inputs = keras.Input((784,), name="pixels")
    x = keras.layers.Reshape((28, 28, 1), name=f"{name}_image")(inputs)
    index = 0
    for block, widths in enumerate(blocks, start=1):
        for width in widths:
            index += 1
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{name}_conv{index}")(x)
        x = keras.layers.MaxPooling2D(name=f"{name}_pool{block}")(x)
        if block_dropout:
            x = keras.layers.Dropout(block_dropout, name=f"{name}_dropout{block}")(x)
    x = keras.layers.Flatten(name=f"{name}_features")(x)
    if dense:
        x = keras.layers.Dense(dense, activation="relu", name=f"{name}_dense")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dense_dropout")(x)
    outputs = keras.layers.Dense(10, name=f"{name}_logits")(x)
    return keras.Model(inputs, outputs, name=name)


def loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def metrics():
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def same_start(build, seed):
    """A function returning fresh copies of one initialization of `build()`,
    so that every compared run starts from the same weights."""
    keras.utils.set_random_seed(seed)
    weights = build().get_weights()

    def fresh():
        model = build()
        model.set_weights(weights)
        return model

    return fresh


def trained(kind, name, build, data, seed, settings):
    """A model trained on every label of `data`, from disk when it was
    trained before (`teacher_store`), memoized in this process."""
    key = {"kind": kind, "data": data_key(data), "seed": seed, "optimizer": "adam 1e-3", **settings}
    memo = (name, repr(sorted(key.items())))
    if memo not in _trained:

        def fit(model):
            keras.utils.set_random_seed(seed)
            model.fit(
                data.x_train, data.y_train, epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=0
            )

        def new():
            keras.utils.set_random_seed(seed)
            return compile_classifier(build())

        model, record = teacher_store.trained(name, new, fit, key=key)
        _trained[memo] = (model, record)
    return _trained[memo]


def data_key(data):
    """What identifies a training set: its size and a digest of its labels."""
    digest = hashlib.sha256(np.ascontiguousarray(data.y_train).tobytes()).hexdigest()[:12]
    return f"fashion_mnist:{len(data.x_train)}:{digest}"


def describe_teacher(kind, data):
    """The teacher's architecture and training, in words."""
    settings = TEACHERS[kind]["quick" if data.quick else "full"]
    if kind == "mlp":
        text = f"MLP 784-{settings['units']}x2-10, dropout {settings['dropout']}"
    elif kind == "cnn":
        convolutions = " | ".join("-".join(str(w) for w in block) for block in settings["blocks"])
        text = (
            f"CNN, 3x3 convolutions {convolutions} with max pooling and dropout "
            f"{settings['block_dropout']}, Dense({settings['dense']}) with dropout {settings['dropout']}"
        )
    else:
        units = "-".join(str(u) for u in settings["units"])
        text = (
            f"{settings['members']} MLPs 784-{units}-10, dropout {settings['dropout']}, each from its own "
            "seed, their probabilities averaged"
        )
    return f"{text}, {settings['epochs']} epochs on every label, Adam 1e-3, batch {settings['batch_size']}"


def teacher(data, seed, kind="mlp"):
    """The `kind` teacher for `seed` ("mlp" or "cnn"), trained on every label."""
    return teacher_with_record(data, seed, kind)[0]


def teacher_with_record(data, seed, kind="mlp", overrides=None):
    """`(teacher, record)`: the record says whether it was trained now and
    how long its training took (`teacher_store.trained`). `overrides`
    changes the settings (e.g. `{"epochs": 5}`), and so the stored model."""
    settings = {**TEACHERS[kind]["quick" if data.quick else "full"], **(overrides or {})}
    if kind == "mlp":

        def build():
            return mlp([settings["units"]] * 2, "teacher", dropout=settings["dropout"])

    elif kind == "cnn":

        def build():
            return cnn(
                settings["blocks"],
                "cnn_teacher",
                dense=settings["dense"],
                block_dropout=settings["block_dropout"],
                dropout=settings["dropout"],
            )

    else:
        raise ValueError(f"Unknown teacher kind {kind!r}. Expected 'mlp' or 'cnn'.")
    return trained(kind, f"{kind}_teacher", build, data, seed, settings)


def ensemble(data, seed):
    """The ensemble teacher's members for `seed` (each from its own seed)."""
    settings = TEACHERS["ensemble"]["quick" if data.quick else "full"]
    members = []
    for index in range(settings["members"]):
        member_seed = 1000 * (seed + 1) + index
        build = lambda index=index: mlp(settings["units"], f"member_{index}", dropout=settings["dropout"])  # noqa: E731
        members.append(trained("ensemble member", "ensemble_member", build, data, member_seed, settings)[0])
    return members


def predict_logits(model, x):
    return np.asarray(model.predict(x, batch_size=1000, verbose=0))


def accuracy(model, x, y):
    return float(np.mean(np.argmax(predict_logits(model, x), axis=-1) == y))


def errors(model, x, y):
    return int(np.sum(np.argmax(predict_logits(model, x), axis=-1) != y))


def ensemble_errors(members, x, y):
    """Test errors of the members' averaged probabilities."""
    probabilities = np.mean([keras.ops.convert_to_numpy(keras.ops.softmax(predict_logits(m, x))) for m in members], 0)
    return int(np.sum(np.argmax(probabilities, axis=-1) != y))


def cached_targets(teacher, data):
    """The training labels with the teacher's (or teachers') logits, computed
    once, for `fit` of a distiller (`keras_distill.with_teacher_outputs`)."""
    return kd.with_teacher_outputs(data.y_train, kd.precompute_teacher_outputs(teacher, data.x_train, batch_size=1000))


def fit_student(model, data, *, epochs, batch_size, seed, teacher=None, targets=None, callbacks=(), **compile_kwargs):
    """Trains `model` on the labels alone (no `teacher`), or distilled from
    `teacher` through the cached `targets`, Adam 1e-3; returns `model`.
    Compared runs of one seed see the same batches in the same order."""
    keras.utils.set_random_seed(seed)
    fit = dict(epochs=epochs, batch_size=batch_size, verbose=0, callbacks=list(callbacks))
    if teacher is None:
        compile_classifier(model).fit(data.x_train, data.y_train, **fit)
        return model
    distiller = kd.Distiller(student=model, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss(), metrics=metrics(), **compile_kwargs)
    distiller.fit(data.x_train, targets, **fit)
    return model
