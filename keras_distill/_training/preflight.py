"""What a distiller checks before any step runs: that it is compiled, the
models' output shapes, cached teacher outputs, labels (present, in range, in
the loss's format) and finite inputs. A mixin of `keras_distill.Distiller`,
so that its training step reads apart from its checks."""

import keras

from keras_distill._training import checks
from keras_distill._training import data_checks
from keras_distill._training import step
from keras_distill._training import structured


class PreflightMixin:
    """`_preflight(x, y)` and the checks it runs, for a `Distiller`."""

    #: Why a subclass that runs its teacher live refuses cached teacher
    #: outputs (None: cached outputs are taken).
    cached_outputs_refusal = None

    def _check_compiled(self, method):
        if not self.compiled or self._distillation_loss is None:
            name = type(self).__name__
            raise ValueError(
                f"{name}.{method}() was called before compile(). "
                f"Call {name.lower()}.compile(optimizer=..., loss=..., alpha=..., "
                f"temperature=...) first; see help(keras_distill.{name}.compile)."
            )

    def _check_output_shapes(self, x):
        """Compares the models' outputs on one example of `x`, when their
        shapes are not known statically (subclassed models).

        A mismatch found later, while tracing the first step, would leave
        the JAX trainer's variables unsynced; here nothing has run yet.
        """
        if self._structure is not None:
            return
        if not any(structured.of_model(model) for model in self.teachers):
            shapes = [checks.output_shape(model) for model in self.teachers]
            if None not in shapes and checks.output_shape(self.student) is not None:
                return
        try:
            example = keras.tree.map_structure(lambda array: array[:1], x)
        except (TypeError, IndexError, KeyError):
            return  # a dataset or generator: checked when the step is traced
        student_output = self.student(example, training=False)
        structure = structured.of_value(student_output)
        if structure is not None or isinstance(student_output, dict):
            self._check_structure_on_example(example, student_output)
            return
        student_shape = tuple(student_output.shape)
        teacher_shapes = [tuple(model(example, training=False).shape) for model in self.teachers]
        checks.check_teacher_shapes(
            self.teachers, student_shape, self.student.name, self.teacher_classes, teacher_shapes
        )

    def _labels_only(self, y):
        """The labels of `y`, for a subclass that refuses cached outputs."""
        labels, cached = step.split_target(y)
        if cached is not None:
            raise ValueError(self.cached_outputs_refusal)
        return labels

    def _check_cached_outputs(self, x, y):
        if self.cached_outputs_refusal is not None and data_checks.uses_cached_outputs(x, y):
            raise ValueError(self.cached_outputs_refusal)
        data_checks.check_cached_outputs(
            x,
            y,
            self.teachers,
            self.teacher_classes,
            self._distillation_loss,
            self._standardize_logits,
            classes=self._classes(),
        )

    def _classes(self):
        if self._structure is not None:
            return None
        shape = checks.output_shape(self.student)
        return None if shape is None else shape[-1]

    @data_checks.reads_once
    def _preflight(self, x, y, class_weight=None, sample_weight=None):
        """Every check of `fit` / `evaluate` data that can run before a step:
        examples present, token ids in the vocabularies, output shapes,
        cached outputs, labels (present, in range, in the loss's format) and
        finite inputs."""
        data_checks.check_not_empty(x, f"{type(self).__name__}.fit()/evaluate()")
        if not self.separate_teacher_inputs and not data_checks.is_dataset(x):
            data_checks.check_token_ids(x, [self.student, *self.teachers])
        self._check_sample_weight(x, sample_weight)
        if self.separate_teacher_inputs:
            data_checks.check_separate_inputs(x, y)
        else:
            self._check_output_shapes(x)
        if self._plan is not None:
            return self._preflight_structured(x, y)
        self._check_cached_outputs(x, y)
        data_checks.check_class_weight(x, y, class_weight)
        if not data_checks.has_labels(x, y) and (
            self._student_loss is not None or getattr(self._distillation_loss, "needs_labels", False)
        ):
            raise self._missing_labels_error()
        inputs, targets = data_checks.sample(x, y)
        labels, _ = step.split_target(targets)
        data_checks.check_labels(
            labels, self._student_loss, self._classes(), owner=f"the student {self.student.name!r}"
        )
        data_checks.check_finite_inputs(inputs)

    def _preflight_structured(self, x, y):
        """The checks of `_preflight` for a model with several outputs: no
        cached outputs, labels for every output trained on labels."""
        if data_checks.uses_cached_outputs(x, y):
            raise ValueError(
                "Cached teacher outputs (keras_distill.with_teacher_outputs) hold one output; the models have "
                f"several ({list(self._structure.names)}). Train from the live teacher."
            )
        inputs, targets = data_checks.sample(x, y)
        if self._plan.hard:
            if not data_checks.has_labels(x, y):
                raise self._missing_labels_error()
            if targets is not None:
                labels = self._plan.labels(targets)
                missing = sorted(name for name in self._plan.hard if name not in labels)
                if missing:
                    raise ValueError(
                        f"Outputs {missing} have a hard-label loss but no labels: y has "
                        f"{sorted(labels)}. Pass y={{name: labels}} for every output named in `loss`, or drop "
                        "their losses."
                    )
                for name, (loss, _) in self._plan.hard.items():
                    tensor = structured.output_tensor(self.student, name, self._structure)
                    classes = None if tensor is None else tensor.shape[-1]
                    data_checks.check_labels(labels[name], loss, classes, owner=f"the student's output {name!r}")
        data_checks.check_finite_inputs(inputs)

    def _check_sample_weight(self, x, sample_weight):
        """A subclass's checks of `fit`'s `sample_weight` (none here)."""

    def _missing_labels_error(self):
        if self._student_loss is not None:
            return ValueError(
                "The distiller was compiled with a hard-label loss but got "
                "no labels (y=None). Pass labels to fit()/evaluate(), or "
                "compile with loss=None and alpha=0.0 to distill from "
                "unlabeled data."
            )
        return ValueError(
            f"distillation_loss={type(self._distillation_loss).__name__} needs the "
            "labels (it separates the target class from the others), but got "
            "no labels (y=None). Pass labels y, or compile with a loss that "
            "needs none, e.g. distillation_loss='kl'."
        )
