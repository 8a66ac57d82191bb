"""FeatureDistiller: distillation from intermediate features."""

import keras
from keras import ops

from keras_distill import features as features_module
from keras_distill._training import step
from keras_distill._training.checks import arguments
from keras_distill._training.checks import data as data_checks
from keras_distill._training.checks import models as checks
from keras_distill._training.guards import guarded
from keras_distill._training.hyperparameters import add_hyperparameter
from keras_distill._training.hyperparameters import as_float
from keras_distill._training.projections import build_regressor
from keras_distill._training.projections import pair_shapes
from keras_distill._validate import check_number
from keras_distill.distillers.distiller import Distiller
from keras_distill.distillers.stages import FeatureStage
from keras_distill.losses.base import as_float32
from keras_distill.losses.base import check_same_shape
from keras_distill.losses.lookup import get_feature_loss

FINAL_OUTPUT = features_module.FINAL_OUTPUT


@keras.saving.register_keras_serializable(package="keras_distill")
class FeatureDistiller(Distiller):
    """Distills a teacher's intermediate features, plus its soft targets.

    The loss on a batch is the `keras_distill.Distiller` loss plus

        feature_weight * sum over pairs k of pair_weights[k] *
            feature_loss(teacher_feature_k, projection_k(student_feature_k))

    The features come from functional sub-models over the models' own layers
    (`keras_distill.features.build_feature_extractor`), so the student's
    taps and its predictions come from one forward pass per step. Models
    must be Functional or Sequential. The models are never edited.

    `fit_features(x)` trains the student's layers up to its tapped layers
    (and the projections) on the feature loss alone, a first stage as in
    FitNets and FSP; `fit(x, y)` then trains the whole student.

    Args:
        student: Functional or Sequential `keras.Model` returning logits.
        teacher: Functional or Sequential `keras.Model` with the student's
            output shape.
        pairs: list of `(teacher_layer, student_layer)`. Each side is a
            layer name (`"backbone/conv3"` inside a nested model) or a tuple
            of names, for losses that compare several maps (FSP).
        feature_loss: A `keras.losses.Loss` called as
            `loss(teacher_feature, student_feature, sample_weight)`, or a
            name: `"hint"`, `"mse"`, `"attention_transfer"`, `"fsp"`,
            `"rkd_distance"`, `"rkd_angle"`, `"cosine_similarity"`.
        pair_weights: One float per pair. Defaults to `1 / len(pairs)`
            each (the mean over pairs).
        projections: `None` (compare features as they are), `"auto"`
            (learn a `build_regressor`
            layer for every pair whose shapes differ) or a list with one
            Keras layer (or `None`) per pair, applied to the student's
            feature. Projections are trained with the student but are not
            part of it.
        teacher_output_kind: As in `keras_distill.Distiller`.
        name: Name of the distiller.

    Examples:

    ```python
    distiller = keras_distill.FeatureDistiller(
        student=student,
        teacher=teacher,
        pairs=[("teacher_block2", "student_block2")],
        feature_loss=keras_distill.losses.AttentionTransfer(),
    )
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        alpha=1.0,
        feature_weight=500.0,
    )
    distiller.fit(x_train, y_train, epochs=5)
    ```
    """

    requires_feature_stage = False
    takes_separate_teacher_inputs = False
    takes_structured_outputs = False
    weight_argument = "feature_weight"
    default_feature_weight = 1.0
    feature_metric_name = "feature_loss"

    def __init__(
        self,
        *models,
        student=None,
        teacher=None,
        pairs=None,
        feature_loss="mse",
        pair_weights=None,
        projections=None,
        teacher_output_kind="auto",
        name="feature_distiller",
        **kwargs,
    ):
        checks.check_model_keywords(type(self).__name__, models, student, teacher, pairs=pairs)
        if isinstance(teacher, (list, tuple)):
            raise ValueError(
                f"{type(self).__name__} distills one teacher's features. "
                f"Received {len(teacher)} teachers. Pass one teacher, or use "
                "keras_distill.Distiller(student=student, teacher=[...]) to distill "
                "several teachers' outputs."
            )
        super().__init__(student=student, teacher=teacher, teacher_output_kind=teacher_output_kind, name=name, **kwargs)
        self.pairs = normalize_pairs(pairs)
        self.pair_weights = normalize_pair_weights(pair_weights, len(self.pairs))
        self.feature_loss = get_feature_loss(feature_loss)
        teacher_layers = _unique(spec for spec, _ in self.pairs)
        student_layers = _unique(spec for _, spec in self.pairs)
        self.teacher_features = features_module.build_feature_extractor(teacher, teacher_layers)
        self.student_features = features_module.build_feature_extractor(student, student_layers)
        self._projections_arg = projections
        self.projections = self._build_projections(projections)
        self._check_pairs()
        self.feature_loss_tracker = keras.metrics.Mean(name=self.feature_metric_name)
        self._feature_weight = add_hyperparameter(self, "feature_weight", self.default_feature_weight)
        self._feature_stage_done = add_hyperparameter(self, "feature_stage_done", 0.0)

    def _build_projections(self, projections):
        if projections is None:
            return [keras.layers.Identity() for _ in self.pairs]
        if projections == "auto":
            built = []
            for index, (teacher_shape, student_shape) in enumerate(
                pair_shapes(self.pairs, self.teacher_features, self.student_features)
            ):
                if teacher_shape == student_shape or isinstance(teacher_shape, list):
                    built.append(keras.layers.Identity())
                else:
                    built.append(build_regressor(student_shape, teacher_shape, name=f"projection_{index}"))
            return built
        if isinstance(projections, (keras.layers.Layer, dict)):
            projections = [projections]
        projections = list(projections)
        if len(projections) != len(self.pairs):
            raise ValueError(
                f"Expected one projection per pair ({len(self.pairs)}). "
                f"Received {len(projections)}: {projections!r}. Pass a list "
                "with a layer (or None) for each pair, or projections='auto'."
            )
        return [keras.layers.Identity() if layer is None else _deserialize_layer(layer) for layer in projections]

    def _check_pairs(self):
        """Builds the projections and checks every pair's shapes."""
        shapes = pair_shapes(self.pairs, self.teacher_features, self.student_features)
        for (teacher_spec, student_spec), projection, (teacher_shape, student_shape) in zip(
            self.pairs, self.projections, shapes
        ):
            if isinstance(student_shape, tuple):
                if not projection.built:
                    projection.build(student_shape)
                student_shape = tuple(
                    projection.compute_output_spec(keras.KerasTensor(student_shape, dtype="float32")).shape
                )
            elif not isinstance(projection, keras.layers.Identity):
                raise ValueError(
                    f"A projection was given for the pair {teacher_spec!r} / "
                    f"{student_spec!r}, whose sides are several layers. "
                    "Projections apply to single layers: pass None for it."
                )
            check = getattr(self.feature_loss, "check_shapes", None)
            try:
                if check is not None:
                    check(teacher_shape, student_shape)
                elif isinstance(teacher_shape, tuple):
                    check_same_shape(teacher_shape, student_shape, type(self.feature_loss).__name__)
            except ValueError as error:
                raise ValueError(f"Pair (teacher {teacher_spec!r}, student {student_spec!r}): {error}") from None

    @property
    def feature_weight(self):
        """The weight of the feature loss in `fit`, a float >= 0."""
        return as_float(self._feature_weight)

    @feature_weight.setter
    def feature_weight(self, value):
        self._feature_weight.assign(arguments.check_loss_weight(value, self.weight_argument))

    @property
    def feature_stage_done(self):
        """Whether `fit_features` has run (saved with the weights)."""
        return as_float(self._feature_stage_done) > 0

    def compile(self, optimizer="adam", loss=None, metrics=None, *, feature_weight=None, **kwargs):
        """Configures the distiller; see `keras_distill.Distiller.compile`.

        Args:
            feature_weight: float >= 0, the weight of the feature loss.
                Defaults to 1.0.
            **kwargs: As in `keras_distill.Distiller.compile`.
        """
        self._compile_with_weight(feature_weight, optimizer, loss, metrics, **kwargs)

    def _compile_with_weight(self, weight, optimizer, loss, metrics, **kwargs):
        weight = arguments.check_loss_weight(
            self.default_feature_weight if weight is None else weight, self.weight_argument
        )
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        self._feature_weight.assign(weight)
        self._compiled_with.arguments[self.weight_argument] = weight

    def call(self, inputs, training=None):
        return self.student_features(inputs, training=training)

    def compute_feature_loss(self, teacher_features, student_features, sample_weight=None):
        """The weighted sum over pairs of the feature loss (float32)."""
        total = ops.zeros((), dtype="float32")
        for (teacher_spec, student_spec), weight, projection in zip(self.pairs, self.pair_weights, self.projections):
            teacher = _gather(teacher_features, teacher_spec)
            student = _gather(student_features, student_spec)
            if isinstance(student_spec, str):
                student = projection(student)
            loss = self.feature_loss(as_float32(teacher), as_float32(student), sample_weight=sample_weight)
            total = total + weight * ops.cast(loss, "float32")
        return total

    def teacher_outputs(self, x):
        """The teacher's logits and its tapped features, from one forward pass."""
        features = dict(self.teacher_features(x, training=False))
        return [features.pop(FINAL_OUTPUT)], features

    def student_predictions(self, y_pred):
        """The student's logits, beside its tapped features in `y_pred`."""
        return y_pred[FINAL_OUTPUT]

    def extra_loss(self, x, y_pred, teacher_features, sample_weight):
        """`feature_weight` times the feature loss, reported as its metric."""
        student_logits = y_pred[FINAL_OUTPUT]
        loss_weights, _ = step.token_weights(x, student_logits, sample_weight)
        feature_loss = self.compute_feature_loss(teacher_features, y_pred, loss_weights)
        self.feature_loss_tracker.update_state(step.unscale(feature_loss), sample_weight=ops.shape(student_logits)[0])
        return self._feature_weight * feature_loss

    def predict(self, x, *args, **kwargs):
        """The student's predictions, as `self.student.predict` gives them."""
        return super().predict(x, *args, **kwargs)[FINAL_OUTPUT]

    def predict_on_batch(self, x):
        return super().predict_on_batch(x)[FINAL_OUTPUT]

    def fit_features(self, x=None, y=None, *, optimizer=None, **kwargs):
        """Stage 1: trains the student up to its tapped layers on the
        feature loss alone; the student's later layers are not run.

        Labels are not needed (`y`, or labels in a dataset, are ignored).

        Args:
            x: Inputs, as in `keras.Model.fit`.
            y: Ignored; accepted so that `(x, y)` datasets work.
            optimizer: The stage's optimizer. Defaults to a fresh copy of
                the compiled optimizer (or Adam before `compile`).
            **kwargs: Passed to `keras.Model.fit` (`epochs`, `batch_size`,
                `callbacks`, ...).

        Returns:
            The stage's `History`.
        """
        # As fit() does: a NaN input would fill the weights with NaN.
        data_checks.check_finite_inputs(data_checks.Sample(x, y).inputs)
        stage = FeatureStage(self)
        if optimizer is None:
            optimizer = "adam"
            if self.compiled and self.optimizer is not None:
                optimizer = self.optimizer.__class__.from_config(self.optimizer.get_config())
        compile_kwargs = {}
        if self.compiled:
            compile_kwargs["jit_compile"] = self.jit_compile
        stage.compile(optimizer=optimizer, **compile_kwargs)
        with guarded(stage) as guard:
            history = stage.fit(x, y, **guard(kwargs))
        self._feature_stage_done.assign(1.0)
        return history

    @property
    def cached_outputs_refusal(self):
        return (
            f"{type(self).__name__} got cached teacher logits "
            "(keras_distill.with_teacher_outputs), but it needs the "
            "teacher's intermediate features, which are not cached, so "
            "the teacher runs every step anyway. Pass the plain labels y."
        )

    def fit(self, x=None, *args, **kwargs):
        self._check_compiled("fit")
        if self.requires_feature_stage and not self.feature_stage_done and self.feature_weight == 0:
            stage = self.stage_method
            raise ValueError(
                f"{type(self).__name__}.fit() was called before {stage}() "
                f"with {self.weight_argument}=0, so the features would never "
                f"be distilled. Run stage 1 first: distiller.{stage}(x, "
                f"epochs=...), then fit(x, y). To train on the feature loss "
                f"and the task in one stage instead, compile with "
                f"{self.weight_argument} > 0."
            )
        return super().fit(x, *args, **kwargs)

    stage_method = "fit_features"

    def get_config(self):
        config = super().get_config()
        projections = self._projections_arg
        if projections not in (None, "auto"):
            if isinstance(projections, keras.layers.Layer):
                projections = [projections]
            projections = [
                None if layer is None else keras.saving.serialize_keras_object(layer) for layer in projections
            ]
        config.update(
            {
                "pairs": [list(pair) for pair in self.pairs],
                "feature_loss": keras.saving.serialize_keras_object(self.feature_loss),
                "pair_weights": list(self.pair_weights),
                "projections": projections,
            }
        )
        return config


def _deserialize_layer(layer):
    if isinstance(layer, dict):
        return keras.saving.deserialize_keras_object(layer)
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            "Projections must be Keras layers. Received: "
            f"{layer!r} (of type {type(layer).__name__}). Pass e.g. "
            "keras.layers.Dense(teacher_width)."
        )
    return layer


def _unique(specs):
    names = []
    for spec in specs:
        for name in (spec,) if isinstance(spec, str) else spec:
            if name not in names:
                names.append(name)
    return names


def _gather(features, spec):
    if isinstance(spec, str):
        return features[spec]
    return tuple(features[name] for name in spec)


def normalize_pairs(pairs):
    """`pairs` as a list of `(teacher_spec, student_spec)`, each spec a layer
    name or a tuple of names."""
    if isinstance(pairs, (tuple, list)) and len(pairs) == 2 and all(isinstance(side, str) for side in pairs):
        pairs = [pairs]
    if not isinstance(pairs, (tuple, list)) or not pairs:
        raise ValueError(
            "`pairs` must be a non-empty list of (teacher_layer, "
            f"student_layer) pairs. Received: pairs={pairs!r}. Use e.g. "
            "pairs=[('teacher_block2', 'student_block2')]."
        )
    normalized = []
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                "Each entry of `pairs` must be a (teacher_layer, "
                f"student_layer) pair. Received: {pair!r} in pairs={pairs!r}."
            )
        normalized.append(tuple(_layer_spec(side, pair) for side in pair))
    return normalized


def _layer_spec(side, pair):
    if isinstance(side, str):
        return side
    if isinstance(side, (tuple, list)) and side and all(isinstance(name, str) for name in side):
        return tuple(side)
    raise ValueError(
        f"Each side of a pair must be a layer name or a tuple of layer names. Received: {side!r} in the pair {pair!r}."
    )


def normalize_pair_weights(pair_weights, count):
    """One float >= 0 per pair; `None` gives `1 / count` each."""
    if pair_weights is None:
        return [1.0 / count] * count
    if not isinstance(pair_weights, (list, tuple)):
        pair_weights = [pair_weights]
    if len(pair_weights) != count:
        raise ValueError(
            f"`pair_weights` must be {count} number(s) >= 0, one per pair. "
            f"Received: pair_weights={list(pair_weights)!r}."
        )
    return [
        check_number(weight, f"pair_weights[{index}]", example=1.0, at_least=0)
        for index, weight in enumerate(pair_weights)
    ]
