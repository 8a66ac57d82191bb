"""FSPDistiller: the flow of solution procedure (Yim et al., 2017)."""

import keras

from keras_distill._training.checks import models as checks
from keras_distill.distillers.feature_distiller import FeatureDistiller
from keras_distill.losses.fsp import FSPLoss


@keras.saving.register_keras_serializable(package="keras_distill")
class FSPDistiller(FeatureDistiller):
    """Teaches the student the teacher's FSP matrices, then the task.

    Each pair names two teacher layers and two student layers; each model's
    two maps give an FSP matrix (`keras_distill.losses.fsp_matrix`), and
    stage 1, `fit_fsp(x)`, trains the student's layers up to its tapped
    layers on the mean over pairs of `||G_teacher - G_student||^2`. Stage 2,
    `fit(x, y)`, trains the whole student on the labels (`alpha=1.0` by
    default; lower it to add the teacher's soft targets), plus `fsp_weight`
    times the FSP loss.

    Args:
        student: Functional or Sequential `keras.Model` returning logits.
        teacher: Functional or Sequential `keras.Model`, same output shape.
        pairs: list of `((teacher_a, teacher_b), (student_a, student_b))`
            layer names. The student's maps need the teacher's channel
            counts; maps of a pair that differ in spatial size are pooled
            to the smaller one.
        pair_weights: One weight per pair (lambda_k). Defaults to
            `1 / len(pairs)`.
        data_format: Defaults to `keras.config.image_data_format()`.
        teacher_output_kind: As in `keras_distill.Distiller`.
        name: Name of the distiller.

    Examples:

    ```python
    distiller = keras_distill.FSPDistiller(
        student=student, teacher=teacher, pairs=[(("t_conv1", "t_conv3"), ("s_conv1", "s_conv2"))]
    )
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    distiller.fit_fsp(x_train, epochs=5)         # stage 1
    distiller.fit(x_train, y_train, epochs=10)   # stage 2
    ```

    Reference:
        - [Yim et al., 2017](https://openaccess.thecvf.com/content_cvpr_2017/html/Yim_A_Gift_From_CVPR_2017_paper.html)
    """

    requires_feature_stage = True
    weight_argument = "fsp_weight"
    default_feature_weight = 0.0
    feature_metric_name = "fsp_loss"
    stage_method = "fit_fsp"

    def __init__(
        self,
        *models,
        student=None,
        teacher=None,
        pairs=None,
        pair_weights=None,
        data_format=None,
        teacher_output_kind="auto",
        name="fsp_distiller",
        **kwargs,
    ):
        checks.check_model_keywords(type(self).__name__, models, student, teacher, pairs=pairs)
        for pair in pairs if isinstance(pairs, (list, tuple)) else [pairs]:
            if not (
                isinstance(pair, (list, tuple))
                and len(pair) == 2
                and all(isinstance(side, (list, tuple)) and len(side) == 2 for side in pair)
            ):
                raise ValueError(
                    "Each FSP pair names two teacher layers and two student "
                    f"layers. Received: {pair!r}. Use e.g. pairs=[(('t_a', "
                    "'t_b'), ('s_a', 's_b'))]."
                )
        super().__init__(
            student=student,
            teacher=teacher,
            pairs=pairs,
            feature_loss=FSPLoss(data_format=data_format),
            pair_weights=pair_weights,
            teacher_output_kind=teacher_output_kind,
            name=name,
            **kwargs,
        )
        self.data_format = self.feature_loss.data_format

    def compile(self, optimizer="adam", loss=None, metrics=None, *, fsp_weight=None, alpha=1.0, **kwargs):
        """Configures stage 2; see `keras_distill.Distiller.compile`.

        Args:
            fsp_weight: float >= 0. Weight of the FSP loss in stage 2.
                Defaults to 0.0, as in the paper.
            alpha: Weight of the hard-label loss. Defaults to 1.0 (the
                paper's stage 2 trains on labels only).
            **kwargs: As in `keras_distill.Distiller.compile`.
        """
        self._compile_with_weight(fsp_weight, optimizer, loss, metrics, alpha=alpha, **kwargs)

    def fit_fsp(self, x=None, y=None, **kwargs):
        """Stage 1 of FSP; see `FeatureDistiller.fit_features`."""
        return self.fit_features(x, y, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("feature_loss")
        config.pop("projections")
        config["data_format"] = self.data_format
        return config
