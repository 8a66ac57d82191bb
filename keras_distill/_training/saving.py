"""How a trainer of several models is saved: its models without their own
compile config, and the arguments its `compile` took, so that a model
loaded from a `.keras` file comes back compiled and trains on.

Keras' `get_compile_config` knows `keras.Model.compile`'s arguments only;
a trainer whose `compile` takes more (`alpha`, `temperature`, ...) keeps
them in a `CompileArguments` and returns `compile_config(...)` of them.
"""

import keras


class CompileArguments:
    """`compile`'s arguments, once checked, in a plain holder: Keras tracks
    the metrics of a dict attribute as the model's own, and `evaluate()`
    then listed them twice."""

    def __init__(self, **arguments):
        self.arguments = arguments


def compile_config(model, remembered):
    """`model.get_compile_config()`: the optimizer (with a portable module
    name, so that a file saved on one backend loads on another) and the
    remembered arguments, serialized."""
    if not model.compiled or remembered is None:
        return {}
    serialize = keras.saving.serialize_keras_object
    return {
        "optimizer": portable(serialize(model.optimizer)),
        **{key: serialize(value) for key, value in remembered.arguments.items()},
    }


def compile_from_config(model, config, models_built):
    """`model.compile(**config)`, then the optimizer's slots built where the
    models are, so that the saved optimizer state loads into them."""
    config = {
        key: keras.saving.deserialize_keras_object(portable(value) if key == "optimizer" else value)
        for key, value in config.items()
    }
    model.compile(**config)
    if models_built:
        model.optimizer.build(model.trainable_variables)


def portable(optimizer_config):
    """An optimizer's config without a backend's module: on PyTorch, Keras
    serializes `keras.optimizers.Adam` as `keras.src.backend.torch.
    optimizers.torch_adam`, which another backend cannot load."""
    if isinstance(optimizer_config, dict) and str(optimizer_config.get("module", "")).startswith("keras.src.backend."):
        optimizer_config = {key: value for key, value in optimizer_config.items() if key != "registered_name"}
        optimizer_config["module"] = "keras.optimizers"
    return optimizer_config


def serialize_model(model):
    """A model's config without its own compile config: a distiller's
    optimizer trains it, and a teacher's optimizer is never used."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return config


def deserialize_models(config, keys):
    """`config` with the models (or lists of models) under `keys`
    deserialized, for a trainer's `from_config`."""
    config = dict(config)
    for key in keys:
        value = config[key]
        if isinstance(value, list):
            config[key] = [keras.saving.deserialize_keras_object(model) for model in value]
        else:
            config[key] = keras.saving.deserialize_keras_object(value)
    return config


def load_weights(model, path):
    """`model.load_weights(path)` for a weights file saved from a compiled
    model: the optimizer is given its slots first, so that its saved state
    loads instead of being skipped with a warning."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.load_weights(path)
