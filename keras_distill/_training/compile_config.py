"""What a distiller's `compile` resolves, and how it is saved.

- the hard-label loss of a student that outputs logits;
- the distillation loss, built to read the distiller's temperature variable;
- `get_compile_config` / `compile_from_config` for trainers whose `compile`
  takes more than `keras.Model.compile` does, so that a model loaded from a
  `.keras` file comes back compiled and trains on.
"""

import inspect

import keras

from keras_distill._training import checks
from keras_distill._training import loss_specs
from keras_distill._training.hyperparameters import DEFAULT_ALPHA
from keras_distill._training.hyperparameters import check_alpha
from keras_distill._training.hyperparameters import resolve_temperature
from keras_distill.losses.base import LogitLoss
from keras_distill.losses.lookup import FunctionLoss
from keras_distill.losses.soft_targets import SoftenedLoss

# Names whose Keras default (from_logits=False) would be wrong on logits.
_FROM_LOGITS_CLASSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}

# Keras losses that compare values, not distributions: as a distillation
# loss they compare the teacher's outputs with the student's as they are
# (logits: Ba & Caruana's logit regression; a regression output's values).
REGRESSION_LOSSES = (
    keras.losses.MeanSquaredError,
    keras.losses.MeanAbsoluteError,
    keras.losses.MeanSquaredLogarithmicError,
    keras.losses.MeanAbsolutePercentageError,
    keras.losses.Huber,
    keras.losses.LogCosh,
)


def resolve_hard_loss(loss):
    """A `keras.losses.Loss` for the student's logits, or None.

    A cross-entropy given by name is built with `from_logits=True`, since a
    distiller's student outputs logits; a loss object built with
    `from_logits=False` is refused rather than silently applied to logits.
    """
    if loss is None:
        return None
    if isinstance(loss, str):
        loss_class = _FROM_LOGITS_CLASSES.get(loss.lower())
        if loss_class is not None:
            return loss_class(from_logits=True)
        loss = keras.losses.get(loss)
    if isinstance(loss, dict):
        loss = keras.saving.deserialize_keras_object(loss)
    if isinstance(loss, keras.losses.Loss):
        if getattr(loss, "from_logits", None) is False:
            raise ValueError(
                f"The student loss {type(loss).__name__} was built with "
                "from_logits=False, so it expects probabilities, but the "
                "student outputs logits. Received: loss="
                f"{type(loss).__name__}(from_logits=False). Use "
                f"keras.losses.{type(loss).__name__}(from_logits=True)."
            )
        return loss
    if callable(loss):
        if _from_logits_default(loss) is False:
            name = getattr(loss, "__name__", type(loss).__name__)
            raise ValueError(
                f"The student loss function {name} defaults to from_logits=False, so it expects "
                "probabilities, but the student outputs logits. Received: "
                f"loss={name}. Pass its name, loss={name!r}, which is built with from_logits=True, "
                "or a loss object such as keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
            )
        return FunctionLoss(loss)
    raise TypeError(
        "`loss` must be a keras.losses.Loss, a loss name or a function. "
        f"Received: loss={loss!r} (of type {type(loss).__name__}). Use e.g. "
        "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
    )


def build_distillation_loss(loss, temperature):
    """The distiller's own copy of `loss` (a resolved `distillation_loss`),
    reading `temperature`, the distiller's variable.

    A `keras_distill.losses.LogitLoss` takes logits and is rebuilt
    from its config with the variable as its temperature (the user's object
    is not changed); any other Keras loss takes probabilities and is wrapped
    in `keras_distill.losses.SoftenedLoss`, which softens both models'
    logits and applies T^2, as in the keras.io tutorial.
    """
    if isinstance(loss, loss_specs.LossList):
        return loss_specs.build(loss, temperature, build_distillation_loss)
    if isinstance(loss, REGRESSION_LOSSES):
        return loss
    if not isinstance(loss, LogitLoss):
        if getattr(loss, "from_logits", False) is True:
            raise ValueError(
                f"distillation_loss={type(loss).__name__}(from_logits=True): a Keras loss given as the "
                "distillation loss receives the softened probabilities of both models (as in the keras.io "
                "tutorial), which from_logits=True would read as logits. Use "
                "distillation_loss='cross_entropy' (soft-target cross-entropy on logits), or "
                f"{type(loss).__name__}(from_logits=False)."
            )
        return SoftenedLoss(loss, temperature=temperature)
    if not loss.uses_temperature:
        return loss
    return type(loss).from_config({**loss.get_config(), "temperature": temperature})


def _from_logits_default(function):
    try:
        parameter = inspect.signature(function).parameters.get("from_logits")
    except (TypeError, ValueError):
        return None
    return None if parameter is None else parameter.default


def pick(name, value, alias, alias_value):
    """`value`, or the keras.io tutorial's `alias` for it; not both."""
    if alias_value is None:
        return value
    if value is not None:
        raise ValueError(
            f"Both `{name}` and `{alias}` were given to compile(). `{alias}` "
            f"is the keras.io tutorial's name for `{name}`: pass only one."
        )
    return alias_value


def load_weights(model, path):
    """`model.load_weights(path)` for a weights file saved from a compiled
    model: the optimizer is given its slots first, so that its saved state
    loads instead of being skipped with a warning."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    model.load_weights(path)


def serialize_model(model):
    """A model's config without its own compile config: a distiller's
    optimizer trains it, and a teacher's optimizer is never used."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return config


def deserialize_models(config, keys):
    """`config` with the models (or lists of models) under `keys`
    deserialized, for a distiller's `from_config`."""
    config = dict(config)
    for key in keys:
        value = config[key]
        if isinstance(value, list):
            config[key] = [keras.saving.deserialize_keras_object(model) for model in value]
        else:
            config[key] = keras.saving.deserialize_keras_object(value)
    return config


class _Arguments:
    def __init__(self, arguments):
        self.arguments = arguments


class CompileConfigMixin:
    """`get_compile_config` / `compile_from_config` for a `keras.Model` whose
    `compile` takes keyword arguments of its own.

    `compile` calls `_remember_compile_arguments(loss=..., alpha=..., ...)`
    once it has validated them; the optimizer is saved with its state.
    Subclasses say in `_models_built()` whether the optimizer's slots can be
    built at load time (so that the saved ones load).
    """

    _remembered = None

    @property
    def _compile_arguments(self):
        return None if self._remembered is None else self._remembered.arguments

    def _remember_compile_arguments(self, **arguments):
        # In a plain holder: Keras tracks the metrics of a dict attribute as
        # the model's own, and `evaluate()` then listed them twice.
        self._remembered = _Arguments(arguments)

    def _models_built(self):
        return self.built

    def get_compile_config(self):
        if not self.compiled or self._compile_arguments is None:
            return {}
        serialize = keras.saving.serialize_keras_object
        return {
            "optimizer": serialize(self.optimizer),
            **{key: serialize(value) for key, value in self._compile_arguments.items()},
        }

    def compile_from_config(self, config):
        config = {key: keras.saving.deserialize_keras_object(value) for key, value in config.items()}
        self.compile(**config)
        if self._models_built():
            self.optimizer.build(self.trainable_variables)


def resolve_compile_arguments(
    loss,
    student_loss_fn,
    distillation_loss,
    distillation_loss_fn,
    alpha,
    temperature,
    standardize_logits,
    kwargs,
    *,
    teacher_top_k,
    separate_teacher_inputs,
    distillation_loss_weights=None,
    student_loss_weight=None,
):
    """`Distiller.compile`'s own arguments, checked and resolved before
    anything changes. Returns `(loss, distillation_loss, alpha, temperature,
    student_loss, resolved_distillation_loss)`; the last is one loss object
    or a `loss_specs.LossList`."""
    loss = pick("loss", loss, "student_loss_fn", student_loss_fn)
    distillation_loss = pick("distillation_loss", distillation_loss, "distillation_loss_fn", distillation_loss_fn)
    alpha = pick("alpha", alpha, "student_loss_weight", student_loss_weight)
    if distillation_loss is None:
        distillation_loss = "kl"
    alpha = DEFAULT_ALPHA if alpha is None else check_alpha(alpha)
    resolved = loss_specs.resolve(distillation_loss, distillation_loss_weights)
    if isinstance(resolved, loss_specs.LossList):
        # Each loss object of a list keeps its own temperature; the
        # distiller's is compile's, for the names and Keras losses.
        temperature = resolve_temperature("kl", temperature)
    else:
        temperature = resolve_temperature(distillation_loss, temperature)
    student_loss = resolve_hard_loss(loss)
    if student_loss is None and alpha > 0:
        raise ValueError(
            f"compile() got loss=None with alpha={alpha}: the hard-label "
            "term has no loss. Pass e.g. loss=keras.losses."
            "SparseCategoricalCrossentropy(from_logits=True), or set "
            "alpha=0.0 to train on the teacher's outputs alone."
        )
    if "loss_weights" in kwargs:
        raise ValueError(
            "Distiller.compile() takes no `loss_weights`. Received: "
            f"loss_weights={kwargs['loss_weights']!r}. Use `alpha` to "
            "weight the hard-label and distillation terms."
        )
    if not isinstance(standardize_logits, bool):
        raise TypeError(
            f"`standardize_logits` must be True or False. Received: standardize_logits={standardize_logits!r}."
        )
    checks.check_top_k(teacher_top_k, loss=resolved, standardize=standardize_logits)
    if separate_teacher_inputs:
        checks.check_loss_across_vocabularies(resolved, distillation_loss)
    return loss, distillation_loss, alpha, temperature, student_loss, resolved


class DistillerConfigMixin:
    """`get_config` / `from_config` of a `Distiller`: its models serialized
    without their own compile config, and its constructor's arguments."""

    def get_config(self):
        teachers = [serialize_model(model) for model in self.teachers]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "student": serialize_model(self.student),
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "teacher_output_kind": self._teacher_output_kind_arg,
            "teacher_weights": self._teacher_weights_arg,
            "teacher_classes": self.teacher_classes,
            "teacher_top_k": self.teacher_top_k,
            "separate_teacher_inputs": self.separate_teacher_inputs,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_models(config, ("student", "teacher")))
