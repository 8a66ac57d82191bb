"""What `Distiller.compute_loss` calls: the teachers' targets for a batch,
the response loss `alpha * hard + (1 - alpha) * distillation` with its
metrics, the student's own losses, and the student's metrics."""

import keras
from keras import ops

from keras_distill._training import checks
from keras_distill._training import step
from keras_distill._training import structured


class ResponseStepMixin:
    """The pieces of a `Distiller`'s training step around `compute_loss`."""

    def _set_compiled(self, hard_loss, built_loss, plan, standardize, alpha, temperature, **arguments):
        """Sets what the step reads, once `compile` has checked everything,
        and remembers compile's arguments for `get_compile_config`."""
        self._student_loss, self._distillation_loss, self._plan = hard_loss, built_loss, plan
        self._standardize_logits = standardize
        self._alpha.assign(alpha)
        self._temperature.assign(temperature)
        self._remember_compile_arguments(
            alpha=alpha, temperature=temperature, standardize_logits=standardize, **arguments
        )

    def _student_inputs(self, x):
        """The student's part of `x`: all of it, unless the teacher has its own."""
        if self.separate_teacher_inputs and isinstance(x, dict) and set(x) == {"student", "teacher"}:
            return x["student"]
        return x

    def compute_teacher_logits(self, x):
        """The float32 logits the student is distilled towards, for inputs
        `x`, without gradient: the teachers' mixture, of the student's
        classes (before any top-k)."""
        outputs, _ = self._run_teachers(x)
        return self._targets.logits(outputs)

    def _run_teachers(self, x):
        """The teachers' outputs on `x` (a list), and their tapped features (none here)."""
        return [model(x, training=False) for model in self.teachers], {}

    def _teacher_targets(self, x, y):
        """`(labels, targets, teacher features)` for one batch: the targets
        from the cache packed into `y`, else from the live teachers."""
        labels, cached = step.split_target(y)
        if cached is not None:
            return labels, self._targets.from_cache(cached), {}
        outputs, features = self._run_teachers(x)
        features = keras.tree.map_structure(ops.stop_gradient, features)
        return labels, self._targets.from_outputs(outputs), features

    def _response_loss(self, labels, targets, student_logits, sample_weight):
        """`alpha * loss(y, student) + (1 - alpha) * distillation_loss`,
        recorded in the `student_loss` and `distillation_loss` metrics."""
        if not targets.packed_top_k and not self.separate_teacher_inputs:
            checks.check_logit_shapes(
                targets.values.shape, student_logits.shape, self.teachers[0].name, self.student.name
            )
        loss = self._top_k_loss if targets.packed_top_k else self._distillation_loss
        if labels is None and (self._student_loss is not None or getattr(loss, "needs_labels", False)):
            raise self._missing_labels_error()

        def batch_mean(loss_fn, y_true, y_pred):
            return loss_fn(y_true, y_pred, sample_weight=sample_weight)

        student_loss, distillation_loss = step.response_losses(
            self._student_loss, loss, labels, targets.values, student_logits, self._standardize_logits, batch_mean
        )
        batch_size = ops.shape(student_logits)[0]
        self.student_loss_tracker.update_state(step.unscale(student_loss), sample_weight=batch_size)
        self.distillation_loss_tracker.update_state(step.unscale(distillation_loss), sample_weight=batch_size)
        return self._alpha * student_loss + (1.0 - self._alpha) * distillation_loss

    def _regularization_loss(self):
        """The student's own losses (`add_loss`, regularizers), summed.

        `self.losses` is read rather than `self.student.losses` because the
        JAX trainer hands the forward pass's losses to `compute_loss` through
        it; the teacher's activity-regularization losses are left out.
        """
        teacher_losses = [loss for model in self.teachers for loss in model.losses]
        return step.regularization_loss(self.losses, teacher_losses)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = step.split_target(y)
        if self._plan is not None:
            labels = structured.metric_labels(labels, self._plan.structure, y_pred)
            return super().compute_metrics(x, labels, y_pred, sample_weight)
        _, metric_weights = step.token_weights(self._student_inputs(x), y_pred, sample_weight)
        y_pred = step.mask_ignored(y_pred, labels, getattr(self._student_loss, "ignore_class", None))
        return super().compute_metrics(x, labels, y_pred, metric_weights)
