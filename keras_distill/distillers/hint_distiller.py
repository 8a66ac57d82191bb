"""HintDistiller: FitNets' hint-based training (Romero et al., 2015)."""

import keras

from keras_distill._training.checks import models as checks
from keras_distill._training.projections import build_regressor
from keras_distill._training.projections import pair_shapes
from keras_distill.distillers.feature_distiller import FeatureDistiller
from keras_distill.features import build_feature_extractor
from keras_distill.losses.hint import HintLoss


@keras.saving.register_keras_serializable(package="keras_distill")
class HintDistiller(FeatureDistiller):
    """FitNets: guide a thin, deep student with a teacher's hidden layers.

    Stage 1, `fit_hints(x)`: the student's layers up to each guided layer,
    plus a regressor `r` per pair, are trained on the hint loss
    `1/2 * ||u_h(x) - r(v_g(x))||^2` (no labels needed); the student's
    layers after the guided layers are neither run nor changed. Stage 2,
    `fit(x, y)`: classic distillation of the whole student (see
    `keras_distill.Distiller`), plus `hint_weight` times the hint loss.

    The regressors belong to the distiller, not to `distiller.student`:
    the student saved or exported afterwards is the user's architecture.

    Args:
        student: Functional or Sequential `keras.Model` returning logits.
        teacher: Functional or Sequential `keras.Model`, same output shape.
        hint_layer: Name of the teacher layer giving the hint, or a list of
            names (one per pair). `"nested_model/layer"` reaches into a
            nested model.
        guided_layer: Name of the student layer to guide, or a list with
            one name per hint layer.
        regressor: `None` (default) builds one per pair: `Dense` for
            vectors, a convolution for feature maps (1x1 when the spatial
            sizes match, otherwise a kernel that shrinks the student's map
            to the hint's, as in the paper), respecting `data_format`. Or a
            Keras layer (one pair) or a list of layers, each mapping the
            guided feature to the hint's shape.
        pair_weights: One weight per pair. Defaults to `1 / len(pairs)`.
        teacher_output_kind: As in `keras_distill.Distiller`.
        name: Name of the distiller.

    Examples:

    ```python
    distiller = keras_distill.HintDistiller(
        student=student, teacher=teacher, hint_layer="teacher_block2", guided_layer="student_block1"
    )
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        alpha=0.1,
        temperature=4.0,
    )
    distiller.fit_hints(x_train, epochs=5)        # stage 1
    distiller.fit(x_train, y_train, epochs=10)    # stage 2
    distiller.student.save("student.keras")
    ```

    Reference:
        - [Romero et al., 2015](https://arxiv.org/abs/1412.6550)
    """

    requires_feature_stage = True
    weight_argument = "hint_weight"
    default_feature_weight = 0.0
    feature_metric_name = "hint_loss"
    stage_method = "fit_hints"

    def __init__(
        self,
        *models,
        student=None,
        teacher=None,
        hint_layer=None,
        guided_layer=None,
        regressor=None,
        pair_weights=None,
        teacher_output_kind="auto",
        name="hint_distiller",
        **kwargs,
    ):
        checks.check_model_keywords(
            type(self).__name__, models, student, teacher, hint_layer=hint_layer, guided_layer=guided_layer
        )
        hint_layers = _as_list(hint_layer, "hint_layer")
        guided_layers = _as_list(guided_layer, "guided_layer")
        if len(hint_layers) != len(guided_layers):
            raise ValueError(
                "`hint_layer` and `guided_layer` must name as many layers. "
                f"Received {len(hint_layers)} hint layer(s) {hint_layers} and "
                f"{len(guided_layers)} guided layer(s) {guided_layers}. Pair "
                "each teacher hint layer with one student layer."
            )
        pairs = list(zip(hint_layers, guided_layers))
        regressor_arg = regressor
        if regressor is None:
            regressor = _default_regressors(student, teacher, pairs)
        super().__init__(
            student=student,
            teacher=teacher,
            pairs=pairs,
            feature_loss=HintLoss(),
            pair_weights=pair_weights,
            projections=regressor,
            teacher_output_kind=teacher_output_kind,
            name=name,
            **kwargs,
        )
        self._regressor_arg = regressor_arg
        self.hint_layer = hint_layer if isinstance(hint_layer, str) else hint_layers
        self.guided_layer = guided_layer if isinstance(guided_layer, str) else guided_layers

    @property
    def regressors(self):
        """The regressor layers, one per (hint, guided) pair."""
        return list(self.projections)

    def compile(self, optimizer="adam", loss=None, metrics=None, *, hint_weight=None, **kwargs):
        """Configures stage 2; see `keras_distill.Distiller.compile`.

        Args:
            hint_weight: float >= 0. Weight of the hint loss in stage 2
                (`fit`). Defaults to 0.0, as in the paper; with a positive
                value `fit` may also run without `fit_hints`.
            **kwargs: As in `keras_distill.Distiller.compile` (`alpha`,
                `temperature`, `distillation_loss`, ...).
        """
        self._compile_with_weight(hint_weight, optimizer, loss, metrics, **kwargs)

    def fit_hints(self, x=None, y=None, **kwargs):
        """Stage 1 of FitNets; see `FeatureDistiller.fit_features`."""
        return self.fit_features(x, y, **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in ("pairs", "feature_loss", "projections"):
            config.pop(key)
        regressor = self._regressor_arg
        if isinstance(regressor, keras.layers.Layer):
            regressor = keras.saving.serialize_keras_object(regressor)
        elif regressor is not None:
            regressor = [keras.saving.serialize_keras_object(layer) for layer in regressor]
        config.update(
            {
                "hint_layer": self.hint_layer,
                "guided_layer": self.guided_layer,
                "regressor": regressor,
            }
        )
        return config


def _as_list(value, argument):
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(name, str) for name in value):
        return list(value)
    raise ValueError(f"`{argument}` must be a layer name or a list of layer names. Received: {argument}={value!r}.")


def _default_regressors(student, teacher, pairs):
    shapes = pair_shapes(
        pairs,
        build_feature_extractor(teacher, [hint for hint, _ in pairs]),
        build_feature_extractor(student, [guided for _, guided in pairs]),
    )
    return [
        build_regressor(student_shape, teacher_shape, name=f"regressor_{index}")
        for index, (teacher_shape, student_shape) in enumerate(shapes)
    ]
