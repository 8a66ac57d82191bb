"""The first stage of FitNets / FSP: the student's front on features alone."""

import keras
from keras import ops

from keras_distill import features as features_module
from keras_distill.distillers import replicas
from keras_distill.distillers.regularization import regularization_loss


class FeatureStage(keras.Model):
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
        self._feature_loss = distiller.compute_feature_loss
        self.feature_loss_tracker = keras.metrics.Mean(
            name=distiller.feature_metric_name
        )

    def call(self, inputs, training=None):
        return self.student_front(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher = self.teacher_front(x, training=False)
        teacher = keras.tree.map_structure(ops.stop_gradient, dict(teacher))
        loss = self._feature_loss(teacher, y_pred, sample_weight)
        first = next(iter(y_pred.values()))
        self.feature_loss_tracker.update_state(
            replicas.unscale(loss), sample_weight=ops.shape(first)[0]
        )
        return loss + regularization_loss(self.losses, self.teacher_front.losses)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return self.get_metrics_result()


def _names(extractor):
    return [
        name for name in extractor.output if name != features_module.FINAL_OUTPUT
    ]
