"""What multi-stage trainers (AssistantChain, BornAgain) share: a fresh
optimizer and a fresh compile per stage, per-stage epochs and callbacks."""

import keras

from keras_distill.distillers.distiller import Distiller
from keras_distill.distillers.student_loss import resolve_student_loss


def optimizer_factory(optimizer):
    """A function returning a new optimizer each call, from a name, a
    config dict, an optimizer (its config is copied) or a factory."""
    if isinstance(optimizer, str):
        return lambda: keras.optimizers.get(optimizer)
    if isinstance(optimizer, dict):
        return lambda: keras.optimizers.deserialize(optimizer)
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = keras.optimizers.serialize(optimizer)
        return lambda: keras.optimizers.deserialize(config)
    if callable(optimizer):
        return optimizer
    raise TypeError(
        "`optimizer` must be a name, a config dict, a keras optimizer or a "
        f"function returning one. Received: optimizer={optimizer!r}."
    )


def per_stage(value, count, argument):
    """`value` repeated for `count` stages, or checked to have one entry each."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(
                f"`{argument}` has {len(value)} entries but there are {count} "
                f"stages. Pass one value for all stages or one per stage."
            )
        return list(value)
    return [value] * count


def per_stage_callbacks(callbacks, count):
    """One list of callbacks per stage: the same list for every stage, or
    a list of lists."""
    if not callbacks:
        return [[] for _ in range(count)]
    if all(isinstance(entry, (list, tuple)) for entry in callbacks):
        return [list(entry) for entry in per_stage(list(callbacks), count, "callbacks")]
    return [list(callbacks) for _ in range(count)]


class StageConfig:
    """The compile() arguments of every stage, kept to build each stage's
    trainer with a fresh optimizer."""

    def __init__(self):
        self.optimizer = None
        self.compile_kwargs = None

    def set(self, optimizer, loss, metrics, **kwargs):
        self.optimizer = optimizer_factory(optimizer)
        self.compile_kwargs = {"loss": loss, "metrics": metrics, **kwargs}

    def check(self, owner):
        if self.compile_kwargs is None:
            raise ValueError(
                f"{owner}.fit() was called before compile(). Call "
                f"compile(optimizer=..., loss=..., alpha=..., temperature=...) first."
            )

    def distiller(self, student, teacher):
        distiller = Distiller(student, teacher)
        distiller.compile(optimizer=self.optimizer(), **self.compile_kwargs)
        return distiller

    def supervised(self, model):
        """Compiles `model` for plain training on labels, fresh optimizer."""
        kwargs = dict(self.compile_kwargs)
        loss = resolve_student_loss(kwargs.pop("loss"))
        for key in ("alpha", "temperature", "distillation_loss"):
            kwargs.pop(key, None)
        model.compile(optimizer=self.optimizer(), loss=loss, **kwargs)
        return model
