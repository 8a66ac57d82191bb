"""The stages of multi-stage methods.

- `FeatureStage`: the first stage of FitNets and FSP, which trains the
  student's front on the feature loss alone (`fit_features`).
- `StageConfig` and friends: what the chains of distillers (`AssistantChain`,
  `BornAgain`) share: a fresh optimizer and a fresh compile per stage,
  per-stage epochs and callbacks.
"""

import keras
from keras import ops

from keras_distill import features as features_module
from keras_distill._compat import UniqueTorchParameters
from keras_distill._training import step
from keras_distill._training.checks.arguments import resolve_hard_loss
from keras_distill._training.checks.models import ends_with_softmax
from keras_distill.distillers.distiller import Distiller


class FeatureStage(UniqueTorchParameters, keras.Model):
    """Trains the student's layers up to its tapped layers, and the
    distiller's projections, on the distiller's feature loss.

    Built by `FeatureDistiller.fit_features`, not by users. Only the layers
    on the path to the taps are in this model, so the student's later
    layers are neither run nor updated.
    """

    def __init__(self, distiller):
        super().__init__(name=f"{distiller.name}_feature_stage")
        student_layers = _names(distiller.student_features)
        teacher_layers = _names(distiller.teacher_features)
        self.student_front = features_module.build_feature_extractor(
            distiller.student, student_layers, include_output=False
        )
        self.teacher_front = features_module.build_feature_extractor(
            distiller.teacher, teacher_layers, include_output=False
        )
        self.projections = distiller.projections
        # Functions, not attributes: Keras would track the teacher twice.
        self._without_teachers = distiller._without_teachers
        self._feature_loss = distiller.compute_feature_loss
        self.feature_loss_tracker = keras.metrics.Mean(name=distiller.feature_metric_name)

    # The teacher is frozen as by the distiller: its variables are carried,
    # never trained.

    @property
    def trainable_variables(self):
        return self._without_teachers(super().trainable_variables, [])[0]

    @property
    def non_trainable_variables(self):
        return self._without_teachers(super().trainable_variables, super().non_trainable_variables)[1]

    @property
    def trainable_weights(self):
        return self._without_teachers(super().trainable_weights, [])[0]

    @property
    def non_trainable_weights(self):
        return self._without_teachers(super().trainable_weights, super().non_trainable_weights)[1]

    def call(self, inputs, training=None):
        return self.student_front(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher = self.teacher_front(x, training=False)
        teacher = keras.tree.map_structure(ops.stop_gradient, dict(teacher))
        loss = self._feature_loss(teacher, y_pred, sample_weight)
        first = next(iter(y_pred.values()))
        self.feature_loss_tracker.update_state(step.unscale(loss), sample_weight=ops.shape(first)[0])
        return loss + step.regularization_loss(self.losses, self.teacher_front.losses)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return self.get_metrics_result()


def _names(extractor):
    return [name for name in extractor.output if name != features_module.FINAL_OUTPUT]


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
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer=self.optimizer(), **self.compile_kwargs)
        return distiller

    def supervised(self, model):
        """Compiles `model` for plain training on labels, fresh optimizer.

        A model that ends in a softmax gets the loss on probabilities
        (`from_logits=False`): the distillers' hard losses read logits."""
        kwargs = dict(self.compile_kwargs)
        loss = resolve_hard_loss(kwargs.pop("loss"))
        if ends_with_softmax(model):
            config = loss.get_config()
            if "from_logits" not in config:
                raise ValueError(
                    f"The teacher {model.name!r} ends in a softmax, so it is trained on probabilities, but "
                    f"the loss {type(loss).__name__} has no from_logits setting to say so. Pass a "
                    "cross-entropy (e.g. loss='sparse_categorical_crossentropy'), or give the teacher a "
                    "last layer without activation."
                )
            loss = type(loss).from_config({**config, "from_logits": False})
        for key in ("alpha", "temperature", "distillation_loss"):
            kwargs.pop(key, None)
        model.compile(optimizer=self.optimizer(), loss=loss, **kwargs)
        return model
