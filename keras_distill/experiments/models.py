"""The reproductions' models, their training and their scores."""

import keras
import numpy as np

# Hinton et al.'s MNIST teacher: two hidden layers of 1200 units, dropout.
# It is shared by the experiments that distill from it (hinton,
# dark-knowledge, fitnets, takd): one training per seed and process.
TEACHER = {
    "full": {"units": 1200, "dropout": 0.3, "epochs": 15, "batch_size": 256},
    "quick": {"units": 64, "dropout": 0.3, "epochs": 1, "batch_size": 128},
}
_teachers = {}


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


def cnn(blocks, name):
    """3x3 `same` convolutions `{name}_conv{i}`, each block max-pooled, then
    a dense layer to 10 logits."""
    inputs = keras.Input((28, 28, 1))
    x = inputs
    index = 0
    for block, widths in enumerate(blocks, start=1):
        for width in widths:
            index += 1
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                    name=f"{name}_conv{index}")(x)
        x = keras.layers.MaxPooling2D(name=f"{name}_pool{block}")(x)
    x = keras.layers.Flatten(name=f"{name}_features")(x)
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


def teacher(data, seed):
    """The MLP teacher for `seed`, trained on the labels (memoized)."""
    settings = TEACHER["quick" if data.quick else "full"]
    key = (id(data), seed)
    if key not in _teachers:
        keras.utils.set_random_seed(seed)
        model = mlp([settings["units"]] * 2, "teacher", dropout=settings["dropout"])
        compile_classifier(model)
        model.fit(data.x_train, data.y_train, epochs=settings["epochs"],
                  batch_size=settings["batch_size"], verbose=0)
        _teachers[key] = model
    return _teachers[key]


def predict_logits(model, x):
    return np.asarray(model.predict(x, batch_size=1000, verbose=0))


def accuracy(model, x, y):
    return float(np.mean(np.argmax(predict_logits(model, x), axis=-1) == y))


def errors(model, x, y):
    return int(np.sum(np.argmax(predict_logits(model, x), axis=-1) != y))
