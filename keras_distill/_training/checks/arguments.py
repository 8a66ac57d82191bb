"""Checks of a distiller's `compile` arguments, before anything changes.

One function per argument (or per question about one): each returns the
argument resolved (a loss name as the loss object, an alias as its value),
or raises a `TypeError` (wrong type) or a `ValueError` (wrong value) that
says what was received and how to fix it. A refused `compile` leaves the
distiller as it was.
"""

import collections
import inspect

import keras

from keras_distill._defaults import DEFAULT_ALPHA
from keras_distill._defaults import DEFAULT_TEMPERATURE
from keras_distill._validate import check_number
from keras_distill.losses.base import LogitLoss
from keras_distill.losses.base import check_temperature
from keras_distill.losses.lookup import FunctionLoss
from keras_distill.losses.lookup import get as get_distillation_loss
from keras_distill.losses.top_k_divergence import top_k_counterpart

# Names whose Keras default (from_logits=False) would be wrong on logits.
_FROM_LOGITS_CLASSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}

#: Keras losses that compare values, not distributions: as a distillation
#: loss they compare the teacher's outputs with the student's as they are
#: (logits: Ba & Caruana's logit regression; a regression output's values).
REGRESSION_LOSSES = (
    keras.losses.MeanSquaredError,
    keras.losses.MeanAbsoluteError,
    keras.losses.MeanSquaredLogarithmicError,
    keras.losses.MeanAbsolutePercentageError,
    keras.losses.Huber,
    keras.losses.LogCosh,
)

#: A checked list of distillation losses on one output: `losses` resolved
#: (loss objects), `own_temperature` whether each keeps the temperature it
#: was built with (an object passed in) or follows the distiller's (a name,
#: a Keras loss), and their `weights`.
LossList = collections.namedtuple("LossList", ["losses", "own_temperature", "weights"])

# What the distillers report themselves; Keras cannot build them as metrics.
REPORTED = ("loss", "student_loss", "distillation_loss")


def pick(name, value, alias, alias_value):
    """`value`, or the keras.io tutorial's (or keras.distillation's) `alias`
    for it; not both."""
    if alias_value is None:
        return value
    if value is not None:
        raise ValueError(
            f"Both `{name}` and `{alias}` were given to compile(). `{alias}` "
            f"is the keras.io tutorial's name for `{name}`: pass only one."
        )
    return alias_value


def check_alpha(alpha):
    """`alpha` as a float (the default for None), or an error unless it is a
    number in [0, 1]."""
    if alpha is None:
        return DEFAULT_ALPHA
    return check_number(
        alpha,
        "alpha",
        example=0.5,
        at_least=0.0,
        at_most=1.0,
        note="alpha is the weight of the hard-label loss: alpha=0 distills only, alpha=1 ignores the teacher.",
    )


def check_loss_weight(value, argument):
    """A weight of a loss term (`feature_weight`, `loss_weights[name]`, ...):
    a number >= 0."""
    return check_number(value, argument, example=1.0, at_least=0.0)


def check_standardize(standardize_logits):
    if not isinstance(standardize_logits, bool):
        raise TypeError(
            f"`standardize_logits` must be True or False. Received: standardize_logits={standardize_logits!r}."
        )
    return standardize_logits


def check_metrics(metrics, owner):
    """Refuses metric names that are the distiller's own losses: Keras
    accepts them at compile and fails on them in the first step."""
    for metric in keras.tree.flatten(metrics) if metrics is not None else []:
        if isinstance(metric, str) and metric in REPORTED:
            raise ValueError(
                f"metrics=[{metric!r}, ...]: {owner} reports `loss`, `student_loss` and `distillation_loss` "
                f"itself, and {metric!r} is not a metric Keras can build. Remove it from `metrics`; the values "
                "appear in the History and in evaluate()."
            )


def resolve_temperature(losses, temperature):
    """The distiller's temperature, from compile()'s `temperature` and the
    distillation losses of its outputs as they were given (`losses`: names,
    loss objects, lists).

    A keras_distill loss object passed alone carries its own temperature,
    used when compile() names none; two different temperatures are refused.
    The members of a list keep their own; names have none.
    """
    own = {}
    for loss in losses:
        if isinstance(loss, LogitLoss) and loss.uses_temperature:
            own.setdefault(float(loss.temperature), loss)
    if temperature is not None:
        temperature = check_temperature(temperature)
    given = [value for value in own if value != temperature] if temperature is not None else list(own)
    if temperature is not None and given:
        loss = own[given[0]]
        raise ValueError(
            f"Two temperatures were given: temperature={temperature} and "
            f"distillation_loss={type(loss).__name__}(temperature={given[0]}). Give one of them, e.g. drop "
            "`temperature` from compile()."
        )
    if len(given) > 1:
        raise ValueError(
            f"The outputs' distillation losses were built with different temperatures: {sorted(given)}. A "
            "distiller has one temperature: give the losses by name and pass `temperature`, or put each loss "
            "object in a list (distillation_loss={name: [loss]}), where it keeps its own."
        )
    if temperature is not None:
        return temperature
    return given[0] if given else DEFAULT_TEMPERATURE


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


def _from_logits_default(function):
    try:
        parameter = inspect.signature(function).parameters.get("from_logits")
    except (TypeError, ValueError):
        return None
    return None if parameter is None else parameter.default


def resolve_distillation_loss(distillation_loss, weights):
    """One output's `distillation_loss` resolved (one loss object, or a
    `LossList`), and its `distillation_loss_weights` checked against it."""
    if isinstance(distillation_loss, (list, tuple)):
        if not distillation_loss:
            raise ValueError(
                "`distillation_loss` is an empty list. Pass one loss, e.g. distillation_loss='kl', or a list of "
                "them with their weights: distillation_loss=['kl', 'logit_matching'], "
                "distillation_loss_weights=[1.0, 0.1]."
            )
        for index, item in enumerate(distillation_loss):
            refuse_keras_distillation(item, f"distillation_loss[{index}]")
        losses = [get_distillation_loss(item) for item in distillation_loss]
        own = [isinstance(item, LogitLoss) and item.uses_temperature for item in distillation_loss]
        return LossList(losses, own, _list_weights(weights, len(losses)))
    refuse_keras_distillation(distillation_loss, "distillation_loss")
    if weights is not None:
        if not isinstance(weights, (list, tuple)) or len(weights) != 1:
            raise ValueError(
                "`distillation_loss_weights` weighs the losses of a list: distillation_loss=[loss_a, loss_b], "
                f"distillation_loss_weights=[w_a, w_b]. Received one loss, {distillation_loss!r}, with "
                f"distillation_loss_weights={weights!r}. Use `alpha` to weigh the distillation term against the "
                "hard-label loss, or drop distillation_loss_weights."
            )
        return LossList([get_distillation_loss(distillation_loss)], [False], _list_weights(weights, 1))
    return get_distillation_loss(distillation_loss)


def _list_weights(weights, count):
    """`count` floats >= 0 (1 each by default), not all 0."""
    example = [1.0] * count
    if weights is None:
        return example
    if not isinstance(weights, (list, tuple)) or len(weights) != count:
        raise ValueError(
            f"`distillation_loss_weights` must be a list of {count} numbers >= 0, one per distillation loss. "
            f"Received: distillation_loss_weights={weights!r}. Use e.g. distillation_loss_weights={example}."
        )
    weights = [
        check_number(weight, f"distillation_loss_weights[{index}]", example=1.0, at_least=0.0)
        for index, weight in enumerate(weights)
    ]
    if not any(weights):
        raise ValueError(
            f"Every distillation loss weight is 0. Received: distillation_loss_weights={weights!r}. Give one a "
            "positive weight, or set alpha=1.0 to train on the labels alone."
        )
    return weights


def check_top_k_loss(top_k, loss, standardize):
    """Top-k teacher outputs are distilled with the top-k counterpart of the
    compiled loss (`"kl"`, `"reverse_kl"` or `"jsd"`, over the top k plus
    one bucket for the rest), without logit standardization (which needs
    every logit). `loss` is the compiled distillation loss."""
    if top_k is None:
        return
    if top_k_counterpart(loss) is None:
        raise ValueError(
            f"Top-k teacher outputs are distilled with the forward KL, the reverse KL or the generalized JSD "
            f"(over the top k classes plus one bucket for the rest). Received: distillation_loss="
            f"{type(loss).__name__}. Compile with distillation_loss='kl', 'reverse_kl' or 'jsd', or use dense "
            "teacher outputs (teacher_top_k=None, or a cache without top_k) for other losses."
        )
    if standardize:
        raise ValueError(
            "standardize_logits=True needs every teacher logit, but the teacher "
            f"outputs are its top {top_k} classes only. Compile with "
            "standardize_logits=False, or use dense teacher outputs."
        )


def check_loss_across_vocabularies(loss, given):
    """The distillation loss of a teacher with its own tokenizer must take
    two vocabularies and sequences of different lengths."""
    if not getattr(loss, "accepts_other_vocabularies", False):
        raise ValueError(
            f"distillation_loss={given!r} compares the two models token by token, but with "
            "separate_teacher_inputs=True their vocabularies and sequences differ. Use "
            "distillation_loss='uld' (keras_distill.losses.UniversalLogitDistillation)."
        )


def is_keras_distillation(value):
    return type(value).__module__.startswith("keras.src.distillation")


def refuse_keras_distillation(value, argument):
    """A `TypeError` for a `keras.distillation` loss object, which computes
    on both models at once, with the keras_distill equivalent spelled out."""
    if not is_keras_distillation(value):
        return
    kind = type(value).__name__
    if kind == "LogitsDistillation":
        temperature = getattr(value, "temperature", 3.0)
        names = [getattr(loss, "__name__", str(loss)) for loss in keras.tree.flatten(value.loss)]
        equivalent = (
            f"keras_distill.losses.SoftTargetCrossEntropy(temperature={temperature})"
            if names and all("crossentropy" in name for name in names)
            else f"keras_distill.losses.SoftTargetKLDivergence(temperature={temperature})"
        )
        raise TypeError(
            f"{argument} is a keras.distillation.LogitsDistillation(temperature={temperature}, "
            f"loss={'/'.join(names)}), which keras_distill does not take: its default loss 'kl_divergence' "
            "compares the logits divided by T without a softmax or the T^2 factor (Keras 3.15). Use "
            f"compile(distillation_loss={equivalent}), the KL divergence of the softened distributions "
            "times T^2 (Hinton et al.); several of them go in a list with distillation_loss_weights=[...]. "
            "See the 'Coming from keras.distillation' guide."
        )
    if kind == "FeatureDistillation":
        teacher_layer = getattr(value, "teacher_layer_name", None)
        student_layer = getattr(value, "student_layer_name", None)
        raise TypeError(
            f"{argument} is a keras.distillation.FeatureDistillation(teacher_layer_name={teacher_layer!r}, "
            f"student_layer_name={student_layer!r}). In keras_distill, features are distilled by their own "
            "distiller: keras_distill.FeatureDistiller(student=student, teacher=teacher, "
            f"pairs=[({teacher_layer!r}, {student_layer!r})], feature_loss='mse'), compiled with "
            "distillation_loss and feature_weight. See the 'Coming from keras.distillation' guide."
        )
    raise TypeError(
        f"{argument} is a keras.distillation object ({kind}), which keras_distill does not take. Pass a "
        "keras_distill loss, e.g. distillation_loss=keras_distill.losses.SoftTargetKLDivergence(temperature=3.0). "
        "See the 'Coming from keras.distillation' guide."
    )
