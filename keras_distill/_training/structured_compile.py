"""`compile` and the response loss of a `Distiller` whose models return a
dict (or a list) of outputs; the plan itself is `structured.OutputPlan`."""

import keras
from keras import ops

from keras_distill._training import step
from keras_distill._training import structured
from keras_distill._training.compile_config import build_distillation_loss
from keras_distill._training.compile_config import resolve_hard_loss
from keras_distill._training.hyperparameters import DEFAULT_ALPHA
from keras_distill._training.hyperparameters import check_alpha
from keras_distill._training.hyperparameters import resolve_temperature


class StructuredOutputsMixin:
    """A loss per output, for a `Distiller` (`self._structure` is the
    outputs' structure, None for one tensor or not yet known)."""

    def _compile_structured(
        self,
        optimizer,
        *,
        loss,
        metrics,
        alpha,
        temperature,
        distillation_loss,
        distillation_loss_weights,
        standardize_logits,
        **kwargs,
    ):
        """`compile` for models whose outputs are a dict or a list."""
        # A subclassed student's outputs are seen before the first step.
        if self._structure is None and structured.has_static_outputs(self.student):
            raise ValueError(
                f"`loss` / `distillation_loss` are given per output (a dict), but the student "
                f"{self.student.name!r} has one output. Pass one loss, e.g. distillation_loss='kl'."
            )
        alpha = DEFAULT_ALPHA if alpha is None else check_alpha(alpha)
        temperature = resolve_temperature("kl", temperature)
        loss_weights = kwargs.pop("loss_weights", None)
        if not isinstance(standardize_logits, bool):
            raise TypeError(
                f"`standardize_logits` must be True or False. Received: standardize_logits={standardize_logits!r}."
            )
        plan = structured.resolve(
            self._structure,
            loss,
            loss_weights,
            distillation_loss,
            distillation_loss_weights,
            alpha,
            resolve_hard_loss,
            lambda resolved: build_distillation_loss(resolved, self._temperature),
        )
        if self._structure is not None:
            plan.bind(self._structure, self.student, self.teachers[0], self._teacher_output_kind_arg)
        if self._structure is not None and self._structure.kind == "list":
            # Keras names a list's metrics by the model's output names.
            self.output_names = list(self._structure.names)
        keras.Model.compile(self, optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._set_compiled(
            None,
            plan,
            plan,
            standardize_logits,
            alpha,
            temperature,
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
            distillation_loss=distillation_loss,
            distillation_loss_weights=distillation_loss_weights,
            **kwargs,
        )

    def _check_structure_on_example(self, example, student_output):
        """The checks of construction, on a subclassed student's outputs
        for one example, before the first step."""
        structure = structured.of_value(student_output)
        teacher = self.teachers[0]
        teacher_output = teacher(example, training=False)
        structured.check_structure_allowed(
            structure,
            type(self).__name__,
            self.takes_structured_outputs,
            len(self.teachers),
            self.teacher_classes,
            self.teacher_top_k,
            self.separate_teacher_inputs or None,
        )
        structured.check_same_structure(structure, structured.of_value(teacher_output), self.student, teacher)
        student_outputs = structured.named(student_output, structure)
        structured.check_shapes(
            structure, self.student, teacher, student_outputs, structured.named(teacher_output, structure)
        )
        self._bind_structure(structure)

    def _bind_structure(self, structure):
        """Binds the per-output plan to the outputs' structure, found by
        running a subclassed student on one example."""
        if self._plan is None:
            raise ValueError(
                f"The student {self.student.name!r} returns a {structure.kind} of outputs "
                f"{list(structure.names)}, but compile() got one loss for a single output. Compile with a loss per "
                "output: loss={name: loss, ...}, distillation_loss={name: loss, ...}."
            )
        self._structure = structure
        self._plan.bind(structure, self.student, self.teachers[0], self._teacher_output_kind_arg)

    def _structured_loss(self, x, y, y_pred, sample_weight):
        """The response loss of a model with several outputs."""
        labels = self._labels_only(y)
        if self._plan.structure is None:
            self._bind_structure(structured.of_value(y_pred))
        teacher_outputs = keras.tree.map_structure(ops.stop_gradient, self.teachers[0](x, training=False))
        student_loss, distillation_loss = self._plan.response_losses(
            labels, teacher_outputs, y_pred, x, sample_weight, self._standardize_logits
        )
        batch_size = ops.shape(keras.tree.flatten(y_pred)[0])[0]
        self.student_loss_tracker.update_state(step.unscale(student_loss), sample_weight=batch_size)
        self.distillation_loss_tracker.update_state(step.unscale(distillation_loss), sample_weight=batch_size)
        return self._alpha * student_loss + (1.0 - self._alpha) * distillation_loss
