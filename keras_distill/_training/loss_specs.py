"""What `compile(distillation_loss=..., distillation_loss_weights=...)` may
be, besides one loss: a list of weighted losses on one output, and the
objects of `keras.distillation`, which are refused with their equivalent.

A list is resolved in two steps, as one loss is: `resolve` checks it before
anything changes, `build` makes the distiller's own copy once its
temperature variable exists.
"""

import collections

import keras

from keras_distill._validate import check_number
from keras_distill.losses.base import LogitLoss
from keras_distill.losses.lookup import get as get_distillation_loss

#: A checked list of distillation losses: `losses` resolved (loss objects),
#: `own_temperature` whether each keeps the temperature it was built with
#: (an object passed in) or follows the distiller's (a name, a Keras loss).
LossList = collections.namedtuple("LossList", ["losses", "own_temperature", "weights"])


def resolve(distillation_loss, weights):
    """`distillation_loss` resolved (one loss object, or a `LossList`), and
    `distillation_loss_weights` checked against it."""
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
        return LossList(losses, own, check_weights(weights, len(losses)))
    refuse_keras_distillation(distillation_loss, "distillation_loss")
    if weights is not None:
        if not isinstance(weights, (list, tuple)) or len(weights) != 1:
            raise ValueError(
                "`distillation_loss_weights` weighs the losses of a list: distillation_loss=[loss_a, loss_b], "
                f"distillation_loss_weights=[w_a, w_b]. Received one loss, {distillation_loss!r}, with "
                f"distillation_loss_weights={weights!r}. Use `alpha` to weigh the distillation term against the "
                "hard-label loss, or drop distillation_loss_weights."
            )
        return LossList([get_distillation_loss(distillation_loss)], [False], check_weights(weights, 1))
    return get_distillation_loss(distillation_loss)


def check_weights(weights, count):
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


def build(resolved, temperature, build_one):
    """The distiller's loss from `resolve`'s result. `build_one(loss,
    temperature)` builds one loss reading `temperature` (the variable)."""
    from keras_distill.losses.weighted_sum import WeightedSum

    if not isinstance(resolved, LossList):
        return build_one(resolved, temperature)
    losses = [
        build_one(loss, loss.temperature if own else temperature)
        for loss, own in zip(resolved.losses, resolved.own_temperature)
    ]
    return WeightedSum(losses, resolved.weights)


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


def refuse_constructor_arguments(owner, kwargs):
    """A `TypeError` for keras.distillation.Distiller's constructor
    arguments, which go to `compile` here."""
    moved = {
        "distillation_losses": "compile(distillation_loss=...)",
        "distillation_loss_weights": "compile(distillation_loss_weights=...)",
        "student_loss_weight": "compile(alpha=...) (or its alias compile(student_loss_weight=...))",
    }
    given = [name for name in moved if name in kwargs]
    if given:
        raise TypeError(
            f"{owner}() takes no {', '.join(f'`{name}`' for name in given)}: keras.distillation.Distiller's "
            f"constructor arguments go to compile() in keras_distill. Received: "
            + ", ".join(f"{name}={kwargs[name]!r}" for name in given)
            + ". Use "
            + "; ".join(f"{name} -> {moved[name]}" for name in given)
            + "."
        )
