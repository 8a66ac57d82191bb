"""Distiller: soft-target knowledge distillation (Hinton et al., 2015).

The whole training story of a distiller, top to bottom: construction (the
models checked, the teacher frozen without being changed), `compile` (the
arguments checked and resolved into an output plan), the step
(`compute_loss` and the five methods subclasses override), the entry points
(`fit`, `evaluate`, `predict`, each checking its data first), and saving.
"""

import keras
from keras import ops

from keras_distill import _compat
from keras_distill._defaults import DEFAULT_ALPHA
from keras_distill._defaults import DEFAULT_TEMPERATURE
from keras_distill._training import guards
from keras_distill._training import hub
from keras_distill._training import outputs
from keras_distill._training import saving
from keras_distill._training import step
from keras_distill._training.checks import arguments
from keras_distill._training.checks import data
from keras_distill._training.checks import models
from keras_distill._training.hyperparameters import add_hyperparameter
from keras_distill._training.hyperparameters import as_float
from keras_distill.losses.base import check_temperature


@keras.saving.register_keras_serializable(package="keras_distill")
class Distiller(_compat.UniqueTorchParameters, keras.Model):
    """Trains a student to match a frozen teacher's softened predictions.

    The loss on a batch is

        alpha * loss(y, student_logits)
        + (1 - alpha) * distillation_loss(teacher_logits, student_logits)
        + sum(student.losses)

    where the default distillation loss is
    `T^2 * KL(softmax(teacher_logits / T) || softmax(student_logits / T))`,
    averaged over the batch; `sample_weight` weights both terms. Outputs
    with a time axis `(batch, sequence, classes)` are distilled per token
    and averaged over real tokens (the inputs' `padding_mask`, or a
    per-token `sample_weight`); a keras-hub student's preprocessor is
    applied to raw strings. Cached teacher outputs
    (`keras_distill.precompute_teacher_outputs`) replace the teacher's
    forward pass. It is computed in `compute_loss` with `keras.ops` only, so
    it runs on TensorFlow, JAX and PyTorch, compiled or not; under a
    `tf.distribute` strategy its loss and gradients equal single-device
    training.

    The teacher is frozen for the distiller's own steps: its variables are
    left out of the distiller's trainable variables (no gradient, no
    optimizer slot), it always runs with `training=False` and its outputs
    pass through `ops.stop_gradient`, so its weights never change. Unlike
    `teacher.trainable = False` (what `keras.distillation` does), this leaves
    the user's model as it was: trainable elsewhere. A layer shared by the
    teacher and the student is refused. If a step fails, every model comes
    out with its weights. `predict` and `call` return the student's logits;
    `evaluate` reports the student's metrics. Models go by keyword:
    `keras.distillation.Distiller` takes `(teacher, student)` by position.

    `alpha` and `temperature` live in float32 variables (`distiller.alpha`,
    `distiller.temperature`); `keras_distill.callbacks.AlphaScheduler` and
    `TemperatureScheduler` change them between epochs without retracing.

    Args:
        student: `keras.Model`. Outputs logits of shape `(batch, ...,
            num_classes)`. A student that ends in a softmax is refused: its
            logits are needed. A dict (or list) of outputs takes a loss
            per output in `compile`, from a teacher of the same outputs.
        teacher: `keras.Model` with the student's output shape, or a list
            of them: the distillation target is then the weighted mixture
            of the teachers' temperature-softened distributions.
        teacher_output_kind: `"auto"` (default), `"logits"` or
            `"probabilities"`. What the teacher returns. `"auto"` reads the
            teacher's last layer: a softmax there means probabilities, which
            are turned back into logits with `log` (exact up to a floor of
            1e-30, since `softmax(log(p) / T)` is the tempered distribution).
            Name it for subclassed teachers that return probabilities.
        teacher_weights: One weight >= 0 per teacher, normalized to sum
            to 1. Defaults to equal weights.
        teacher_classes: list of teacher class indices, one per student
            class in the student's order, for a student that specializes on
            a subset of the teacher's classes (class-specialized
            distillation, Wang et al., 2022). The teacher's logits of those
            classes are taken and renormalized by the temperature softmax;
            labels `y` are in the student's class indices.
        teacher_top_k: `None` (default) or an int k: distill from the
            teacher's k most likely classes only (per token for sequence
            outputs), with the top-k counterpart of the distillation loss
            (`keras_distill.losses.top_k_divergence`: the teacher's top k
            plus one bucket for the rest); for large vocabularies. One
            teacher, `distillation_loss` `"kl"`, `"reverse_kl"` or `"jsd"`. A
            dense cache of teacher logits is cut to its top k as well.
        separate_teacher_inputs: bool. For a teacher with its own
            tokenizer: the inputs `x` are then a dict `{"student":
            student_inputs, "teacher": teacher_inputs}`, the same texts
            tokenized by each model's tokenizer; labels and `sample_weight`
            are the student's. The two vocabularies may differ, and the
            loss must take any two:
            `distillation_loss="uld"` (`keras_distill.losses.UniversalLogitDistillation`).
            One teacher; `predict` takes the student's inputs alone.
        name: Name of the distiller.

    Subclassing: the distillers of this library add what their paper adds
    through five methods, each a step of `compute_loss`; override the one
    your method changes:

    - `batch_to_learn(x, y_pred, sample_weight, training)`: the batch the
      loss is computed on (`OnPolicyDistiller`: the student's own samples).
    - `teacher_outputs(x)`: the teachers' outputs and any features they
      expose (`FeatureDistiller`: its tapped layers).
    - `student_predictions(y_pred)`: the student's outputs in what `call`
      returns (`FeatureDistiller`: beside its tapped layers).
    - `response_terms(x, labels, cached, predictions, sample_weight)`: the
      hard-label and distillation sums (`CausalLMDistiller`: chunk by chunk).
    - `extra_loss(x, y_pred, teacher_features, sample_weight)`: terms added
      to the response loss (`FeatureDistiller`: the feature loss).

    Examples:

    ```python
    distiller = keras_distill.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        distillation_loss="kl",
        alpha=0.5,
        temperature=2.0,
    )
    distiller.fit(x_train, y_train, epochs=3, validation_data=(x_val, y_val))
    distiller.student.save("student.keras")
    ```

    Several teachers, or a student for classes 3, 5 and 7 of the teacher:

    ```python
    keras_distill.Distiller(student=student, teacher=[teacher_a, teacher_b], teacher_weights=[2, 1])
    keras_distill.Distiller(student=student_3_classes, teacher=teacher, teacher_classes=[3, 5, 7])
    ```

    Reference:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
        - [Wang et al., 2022](https://openaccess.thecvf.com/content/ACCV2022/html/Wang_Class_Specialized_Knowledge_Distillation_ACCV_2022_paper.html)
    """

    #: Whether the teacher may take inputs of its own (`separate_teacher_inputs`).
    takes_separate_teacher_inputs = True
    #: Whether the models may return a dict or a list of outputs.
    takes_structured_outputs = True
    #: Why a subclass that runs its teacher live refuses cached teacher
    #: outputs (None: cached outputs are taken).
    cached_outputs_refusal = None

    # pragma: no mutate start (`make mutation` mutates the step below; mutmut's wrapper would also hide
    # __init__'s signature from Keras)
    def __init__(
        self,
        *positional,
        student=None,
        teacher=None,
        teacher_output_kind="auto",
        teacher_weights=None,
        teacher_classes=None,
        teacher_top_k=None,
        separate_teacher_inputs=False,
        name="distiller",
        **kwargs,
    ):
        owner = type(self).__name__
        models.check_model_keywords(owner, positional, student, teacher)
        models.refuse_constructor_arguments(owner, kwargs)
        teachers, weights, structure = models.check_distiller_models(
            owner,
            student,
            teacher,
            teacher_output_kind=teacher_output_kind,
            teacher_weights=teacher_weights,
            teacher_classes=teacher_classes,
            teacher_top_k=teacher_top_k,
            separate_teacher_inputs=separate_teacher_inputs,
            takes_separate_teacher_inputs=self.takes_separate_teacher_inputs,
            takes_structured_outputs=self.takes_structured_outputs,
        )
        super().__init__(name=name, **kwargs)
        self.student = student
        self.teachers = teachers
        self.teacher_weights = weights
        self.teacher_classes = None if teacher_classes is None else list(teacher_classes)
        self.teacher_top_k = teacher_top_k
        self.separate_teacher_inputs = separate_teacher_inputs
        kinds = [models.output_kind(model, teacher_output_kind) for model in teachers]
        self.teacher_output_kind = kinds[0] if len(teachers) == 1 else kinds
        self._teacher_output_kind_arg = teacher_output_kind
        self._teacher_weights_arg = None if teacher_weights is None else list(teacher_weights)
        # The structure of the student's outputs: None until it is seen on
        # an example (a subclassed student).
        self._structure = structure

        self._alpha = add_hyperparameter(self, "alpha", DEFAULT_ALPHA)
        self._temperature = add_hyperparameter(self, "temperature", DEFAULT_TEMPERATURE)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        # Set by compile: the losses of each output, logit standardization,
        # and compile's arguments (for get_compile_config).
        self._plan = None
        self._standardize_logits = False
        self._compiled_with = None
        # Built when its models are, so that load_weights, BackupAndRestore
        # and KerasTuner's checkpoints work before the first step.
        self.built = student.built and all(model.built for model in teachers)

    @property
    def teacher(self):
        """The teacher, or the list of teachers when there are several."""
        return self.teachers[0] if len(self.teachers) == 1 else list(self.teachers)

    @property
    def alpha(self):
        """The weight of the hard-label loss, a float in [0, 1]."""
        return as_float(self._alpha)

    @alpha.setter
    def alpha(self, value):
        value = arguments.check_alpha(value)
        if value > 0 and self._plan is not None and not self._plan.trained_on_labels:
            raise ValueError(
                f"Cannot set alpha={value}: the distiller was compiled with "
                "loss=None, so there is no hard-label loss to weight. "
                "Recompile with a loss, e.g. loss=keras.losses."
                "SparseCategoricalCrossentropy(from_logits=True)."
            )
        self._alpha.assign(value)

    @property
    def distillation_loss(self):
        """The distillation loss as compiled (the distiller's own copy, which
        reads its temperature): one loss object, or for models with several
        outputs a dict of them by output name. None before `compile`."""
        if self._plan is None:
            return None
        losses = {output.name: output.distillation_loss for output in self._plan.distilled}
        return losses[None] if self._plan.single else losses

    @property
    def temperature(self):
        """The softmax temperature of the distillation loss, a float > 0."""
        return as_float(self._temperature)

    @temperature.setter
    def temperature(self, value):
        self._temperature.assign(check_temperature(value))

    # The teachers are frozen for the distiller's steps: their variables are
    # left out of its trainable ones (no gradient, no optimizer slot), and
    # the user's models are left as they were (`teacher.trainable` too).

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

    def _without_teachers(self, trainable, non_trainable):
        """`(trainable, non_trainable)` with the teachers' variables moved
        from the first list to the second."""
        frozen = {id(variable) for model in self.teachers for variable in model.variables}
        kept = [variable for variable in trainable if id(variable) not in frozen]
        moved = [variable for variable in trainable if id(variable) in frozen]
        return kept, non_trainable + moved

    def compile(
        self,
        optimizer="adam",
        loss=None,
        metrics=None,
        *,
        alpha=None,
        temperature=None,
        distillation_loss=None,
        distillation_loss_weights=None,
        standardize_logits=False,
        student_loss_fn=None,
        distillation_loss_fn=None,
        student_loss_weight=None,
        **kwargs,
    ):
        """Configures the distiller for training.

        Every argument is checked before anything changes: a refused
        `compile` leaves the distiller as it was.

        Args:
            optimizer: Optimizer of the student, as in `keras.Model.compile`.
            loss: Hard-label loss of the student on its logits, e.g.
                `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`.
                A cross-entropy name such as `"sparse_categorical_crossentropy"`
                is built with `from_logits=True`. `None` trains on the teacher
                alone (labels not needed) and requires `alpha=0`.
            metrics: Metrics of the student, as in `keras.Model.compile`.
            alpha: float in [0, 1], weight of the hard-label loss. Defaults
                to 0.5.
            temperature: float > 0. Defaults to the temperature of a
                `keras_distill.losses` object passed as `distillation_loss`,
                else 2.0.
            distillation_loss: `"kl"` (default), `"cross_entropy"`,
                `"reverse_kl"`, `"jsd"`, `"logit_matching"`, a
                `keras_distill.losses` object (takes logits), or any other
                `keras.losses.Loss` such as `keras.losses.KLDivergence()`,
                which receives the softened teacher and student
                probabilities and is scaled by T^2, as in the keras.io
                tutorial (`keras_distill.losses.SoftenedLoss`). Also
                `"dkd"` (`keras_distill.losses.DecoupledKD`, which is given
                the labels) and `"dist"` (`keras_distill.losses.DIST`).
                Keras' regression losses (`keras.losses.MeanSquaredError()`,
                `MeanAbsoluteError()`, `Huber()`, ...) compare the two
                models' outputs as they are, without softening or T^2
                (logit regression on logits, a regression output's values).
                A list of losses is their weighted sum (see
                `distillation_loss_weights`): each loss object in it keeps
                its own temperature, names and Keras losses follow
                `temperature`.
            distillation_loss_weights: list of floats >= 0, one per loss of
                a `distillation_loss` list: the distillation term is then
                `sum_i weights[i] * distillation_loss[i]`
                (`keras_distill.losses.WeightedSum`). Defaults to 1 each.
            standardize_logits: bool. Z-score both models' logits over the
                classes before the distillation loss (logit standardization,
                Sun et al., 2024; `keras_distill.losses.standardize_logits`),
                so that the student matches the shape of the teacher's
                logits, not their range. Composes with every dense loss.
            student_loss_fn: The keras.io tutorial's name for `loss`.
            distillation_loss_fn: Its name for `distillation_loss`.
            student_loss_weight: keras.distillation's name for `alpha`.
            **kwargs: Passed to `keras.Model.compile` (`jit_compile`,
                `run_eagerly`, `steps_per_execution`, ...), and
                `loss_weights` for models with several outputs.

        Models whose outputs are a dict (or a list) take, in Keras' own
        convention, `loss={name: loss}`, `loss_weights={name: weight}`,
        `distillation_loss={name: loss}` (or a list of losses per name) and
        `distillation_loss_weights={name: weight}` (or a list per name),
        labels `y={name: labels}` and metrics per output; the loss is
        `alpha * sum_o loss_weights[o] * loss[o] + (1 - alpha) * sum_o
        distillation_loss_weights[o] * distillation_loss[o]`, over the
        outputs named in each (weights default to 1). See the guide
        "Coming from keras.distillation" (section "Models with several outputs").
        """
        arguments.check_metrics(metrics, type(self).__name__)
        loss = arguments.pick("loss", loss, "student_loss_fn", student_loss_fn)
        distillation_loss = arguments.pick(
            "distillation_loss", distillation_loss, "distillation_loss_fn", distillation_loss_fn
        )
        alpha = arguments.check_alpha(arguments.pick("alpha", alpha, "student_loss_weight", student_loss_weight))
        standardize_logits = arguments.check_standardize(standardize_logits)
        loss_weights = kwargs.pop("loss_weights", None)
        plan = self._resolve_plan(loss, loss_weights, distillation_loss, distillation_loss_weights, alpha)
        temperature = arguments.resolve_temperature([output.given for output in plan.distilled], temperature)
        if plan.single:
            arguments.check_top_k_loss(self.teacher_top_k, plan.outputs[0].distillation_loss, standardize_logits)
            if self.separate_teacher_inputs:
                arguments.check_loss_across_vocabularies(plan.outputs[0].distillation_loss, distillation_loss)
        if self._structure is not None:
            self._bind(plan, self._structure)
        if plan.structure is not None and plan.structure.kind == "list":
            # Keras names a list's metrics by the model's output names.
            self.output_names = list(plan.structure.names)
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._plan, self._standardize_logits = plan, standardize_logits
        self._alpha.assign(alpha)
        self._temperature.assign(temperature)
        per_output = {} if loss_weights is None else {"loss_weights": loss_weights}
        self._compiled_with = saving.CompileArguments(
            loss=loss,
            metrics=metrics,
            alpha=alpha,
            temperature=temperature,
            distillation_loss=distillation_loss,
            distillation_loss_weights=distillation_loss_weights,
            standardize_logits=standardize_logits,
            **per_output,
            **kwargs,
        )

    def _resolve_plan(self, loss, loss_weights, distillation_loss, distillation_loss_weights, alpha):
        """compile's losses as an `outputs.OutputPlan`, checked."""
        if self._structure == step.SINGLE and outputs.is_per_output(loss, distillation_loss):
            raise ValueError(
                f"`loss` / `distillation_loss` are given per output (a dict), but the student "
                f"{self.student.name!r} has one output. Pass one loss, e.g. distillation_loss='kl'."
            )
        return outputs.resolve(
            self._structure,
            loss=loss,
            loss_weights=loss_weights,
            distillation_loss=distillation_loss,
            distillation_loss_weights=distillation_loss_weights,
            alpha=alpha,
            temperature=self._temperature,
        )

    def _bind(self, plan, structure):
        """Binds a plan to the models' outputs, once known: checks its names
        and each distilled output, and gives each its teacher targets."""
        plan.bind(structure, self.student)
        for output in plan.distilled:
            if output.name is not None:
                models.check_distilled_output(self.student, output.name, structure, output.distillation_loss)
            kinds = [models.output_kind(model, self._teacher_output_kind_arg, output.name) for model in self.teachers]
            if output.name is None:
                output.targets = step.TeacherTargets(
                    kinds,
                    self._temperature,
                    weights=self.teacher_weights,
                    classes=self.teacher_classes,
                    top_k=self.teacher_top_k,
                )
            else:
                output.targets = step.TeacherTargets(kinds, self._temperature)
        self._structure = structure

    def call(self, inputs, training=None):
        return self.student(self._student_inputs(inputs), training=training)

    def _student_inputs(self, x):
        """The student's part of `x`: all of it, unless the teacher has its own."""
        if self.separate_teacher_inputs and isinstance(x, dict) and set(x) == {"student", "teacher"}:
            return x["student"]
        return x

    def _teacher_inputs(self, x):
        return x["teacher"] if self.separate_teacher_inputs else x

    # pragma: no mutate end
    # The step. `compute_loss` is the one training hook (it runs on every
    # backend, compiled or not); the five methods after it are the places a
    # subclass changes it.

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        x, y_pred, sample_weight = self.batch_to_learn(x, y_pred, sample_weight, training=training)
        labels, cached = step.split_target(y)
        if cached is not None and self.cached_outputs_refusal is not None:
            raise ValueError(self.cached_outputs_refusal)
        predictions = self.student_predictions(y_pred)
        hard, distillation, teacher_features = self.response_terms(x, labels, cached, predictions, sample_weight)
        batch_size = ops.shape(keras.tree.flatten(predictions)[0])[0]
        self.student_loss_tracker.update_state(step.unscale(hard), sample_weight=batch_size)
        self.distillation_loss_tracker.update_state(step.unscale(distillation), sample_weight=batch_size)
        loss = self._alpha * hard + (1.0 - self._alpha) * distillation
        return loss + self.extra_loss(x, y_pred, teacher_features, sample_weight) + self._regularization_loss()

    def batch_to_learn(self, x, y_pred, sample_weight, training=True):
        """`(x, y_pred, sample_weight)` of the batch the loss is computed
        on: the batch as given."""
        return x, y_pred, sample_weight

    def teacher_outputs(self, x):
        """The teachers' outputs on `x` (a list, one per teacher), and the
        features they expose (a dict; none here)."""
        return [model(x, training=False) for model in self.teachers], {}

    def student_predictions(self, y_pred):
        """The student's outputs in what `call` returned: all of it."""
        return y_pred

    def response_terms(self, x, labels, cached, predictions, sample_weight):
        """The hard-label and distillation terms, float32 scalars, summed
        over the outputs with their weights, and the teachers' features.

        Each output's terms are Keras losses reduced over the batch with
        `sample_weight` (for outputs with a time axis, over the real
        tokens); the targets are the cached teacher outputs when `cached`
        is given, else the teachers' outputs on `x`.
        """
        if not self._plan.bound:
            self._bind(self._plan, step.of_value(predictions))
        targets, features = self._teacher_targets(self._teacher_inputs(x), cached)
        labels = step.named_labels(labels, self._plan.structure)
        values = step.named(predictions, self._plan.structure)
        student_x = self._student_inputs(x)
        hard = distillation = ops.zeros((), "float32")
        for output in self._plan.outputs:
            student = values[output.name]
            weights, _ = step.token_weights(student_x, student, sample_weight)
            terms = self._output_terms(output, labels.get(output.name), targets.get(output.name), student, weights)
            hard, distillation = hard + terms[0], distillation + terms[1]
        return hard, distillation, features

    def extra_loss(self, x, y_pred, teacher_features, sample_weight):
        """Terms added to the response loss: none here."""
        return ops.zeros((), "float32")

    def _teacher_targets(self, x, cached):
        """`({output name: step.Targets}, teacher features)` for one batch:
        from the cached outputs, else from the live teachers."""
        if cached is not None:
            return {None: self._plan.outputs[0].targets.from_cache(cached)}, {}
        teacher_outputs, features = self.teacher_outputs(x)
        per_teacher = [step.named(value, self._plan.structure) for value in teacher_outputs]
        targets = {
            output.name: output.targets.from_outputs([values[output.name] for values in per_teacher])
            for output in self._plan.distilled
        }
        return targets, keras.tree.map_structure(ops.stop_gradient, features)

    def _output_terms(self, output, labels, targets, student, weights):
        """`(hard, distillation)` of one output, each times its weight."""
        if labels is None and output.needs_labels:
            raise self._missing_labels_error()
        packed = targets is not None and targets.packed_top_k
        loss = output.top_k_loss if packed else output.distillation_loss

        def batch_mean(loss_fn, y_true, y_pred):
            return loss_fn(y_true, y_pred, sample_weight=weights)

        teacher = None if targets is None else targets.values
        hard, distillation = step.response_losses(
            output.hard_loss, loss, labels, teacher, student, self._standardize_logits, batch_mean
        )
        return output.hard_weight * hard, output.distillation_weight * distillation

    def _regularization_loss(self):
        """The student's own losses (`add_loss`, regularizers), summed.

        `self.losses` is read rather than `self.student.losses` because the
        JAX trainer hands the forward pass's losses to `compute_loss` through
        it; the teacher's activity-regularization losses are left out.
        """
        teacher_losses = [loss for model in self.teachers for loss in model.losses]
        return step.regularization_loss(self.losses, teacher_losses)

    def compute_teacher_logits(self, x):
        """The float32 logits the student is distilled towards, for inputs
        `x`, without gradient: the teachers' mixture, of the student's
        classes (before any top-k); a dict by name for several outputs."""
        targets = {
            output.name: output.targets.logits(
                [step.named(value, self._plan.structure)[output.name] for value in self.teacher_outputs(x)[0]]
            )
            for output in self._plan.distilled
        }
        return targets[None] if self._plan.single else targets

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = step.split_target(y)
        ignore_class = getattr(self._plan.outputs[0].hard_loss, "ignore_class", None)
        labels, predictions, weights = step.metric_arguments(
            self._student_inputs(x),
            labels,
            self.student_predictions(y_pred),
            sample_weight,
            self._plan.structure,
            ignore_class,
        )
        return super().compute_metrics(x, labels, predictions, weights)

    def _missing_labels_error(self):
        if self._plan.trained_on_labels:
            return ValueError(
                "The distiller was compiled with a hard-label loss but got "
                "no labels (y=None). Pass labels to fit()/evaluate(), or "
                "compile with loss=None and alpha=0.0 to distill from "
                "unlabeled data."
            )
        loss = self._plan.distilled[0].distillation_loss
        return ValueError(
            f"distillation_loss={type(loss).__name__} needs the "
            "labels (it separates the target class from the others), but got "
            "no labels (y=None). Pass labels y, or compile with a loss that "
            "needs none, e.g. distillation_loss='kl'."
        )

    # pragma: no mutate start
    # The entry points: each checks what it can before a step, turns a
    # keras-hub student's raw strings into its tokens, and leaves every
    # model with its weights if a step fails.

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("fit")
        guards.check_not_held([self.student, *self.teachers], f"{type(self).__name__}.fit()")
        data.check_batch_sizes(kwargs)
        if getattr(x, "shuffles_itself", False):
            # `keras_distill.CachedTeacherOutputs` shuffles its shards and
            # their examples itself; Keras' shuffle of its batches would load
            # a shard for nearly every batch (0.64x the in-memory cache's
            # speed, measured).
            kwargs["shuffle"] = False
        if hub.needs_preprocessing(self.student, x):
            # Shuffled before batching, inside the dataset.
            x, y = hub.preprocess_arguments(self.student, x, y, kwargs, shuffle=kwargs.pop("shuffle", True))
            kwargs["shuffle"] = False
        validation = kwargs.get("validation_data")
        if validation is not None and not isinstance(validation, (tuple, list)):
            validation = (validation,)
        if validation is not None and hub.needs_preprocessing(self.student, validation[0]):
            kwargs["validation_data"] = hub.preprocess(
                self.student,
                *validation,
                batch_size=kwargs.get("validation_batch_size") or kwargs.get("batch_size"),
            )
        x = self._check_data(x, y, kwargs.get("class_weight"), kwargs.get("sample_weight"))
        validation = data.validation_pair(kwargs)
        if validation is not None:
            self._check_data(*validation)
        with guards.guarded(self) as guard:
            return super().fit(x, y, *args, **guard(kwargs))

    def evaluate(self, x=None, y=None, *args, **kwargs):
        if guards.interrupted():
            return {} if kwargs.get("return_dict") else []  # a fit's validation, after a Ctrl-C
        self._check_compiled("evaluate")
        guards.check_not_held([self.student, *self.teachers], f"{type(self).__name__}.evaluate()")
        data.check_batch_sizes(kwargs)
        x, y = hub.preprocess_arguments(self.student, x, y, kwargs)
        x = self._check_data(x, y)
        with guards.guarded(self) as guard:
            return super().evaluate(x, y, *args, **guard(kwargs))

    def predict(self, x, *args, **kwargs):
        guards.check_not_held([self.student], f"{type(self).__name__}.predict()")
        data.check_batch_sizes(kwargs)
        if hub.needs_preprocessing(self.student, x):
            x = hub.preprocess(self.student, x, batch_size=kwargs.pop("batch_size", None))
        with guards.guarded(self) as guard:
            return super().predict(x, *args, **guard(kwargs))

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        self._check_compiled("train_on_batch")
        self._check_data(x, y, class_weight, sample_weight)
        with guards.guarded(self):
            return super().train_on_batch(x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._check_compiled("test_on_batch")
        self._check_data(x, y, sample_weight=sample_weight)
        with guards.guarded(self):
            return super().test_on_batch(x, y, sample_weight, return_dict)

    def _check_compiled(self, method):
        if not self.compiled or self._plan is None:
            name = type(self).__name__
            raise ValueError(
                f"{name}.{method}() was called before compile(). "
                f"Call {name.lower()}.compile(optimizer=..., loss=..., alpha=..., "
                f"temperature=...) first; see help(keras_distill.{name}.compile)."
            )

    def _check_data(self, x, y, class_weight=None, sample_weight=None):
        """Every check of `fit` / `evaluate` data that can run before a step,
        on a bounded sample of it (`checks.data.Sample`): examples present,
        token ids in the vocabularies, the models' outputs, cached outputs,
        labels (present, in range, in the loss's format), finite inputs.
        Returns `x`, or for a generator the same batches (its first was read)."""
        sample = data.Sample(x, y)
        data.check_not_empty(sample, f"{type(self).__name__}.fit()/evaluate()")
        data.check_sample_weight(sample_weight)
        tokens = x if data.is_array_data(x) else sample.inputs
        if self.separate_teacher_inputs:
            data.check_teacher_inputs_given(sample)
            if isinstance(tokens, dict) and set(tokens) == {"student", "teacher"}:
                data.check_token_ids(tokens["student"], [self.student])
                data.check_token_ids(tokens["teacher"], self.teachers)
                data.check_sequence_length(tokens["student"], [self.student])
                data.check_sequence_length(tokens["teacher"], self.teachers)
        else:
            data.check_token_ids(tokens, [self.student, *self.teachers])
            data.check_sequence_length(tokens, [self.student, *self.teachers])
            self._check_outputs_on_example(sample)
        if sample.uses_cached_outputs():
            self._check_cached_outputs(sample)
        data.check_class_weight(sample, class_weight)
        self._check_labels(sample)
        data.check_finite_inputs(sample.inputs)
        return sample.x

    def _check_outputs_on_example(self, sample):
        """Runs the models on one example where their outputs are not known
        without it (subclassed models), and checks them as construction
        checks functional models'. A mismatch found later, while tracing the
        first step, would leave the JAX trainer's variables unsynced."""
        if all(outputs.of_model(model) is not None for model in (self.student, *self.teachers)):
            return
        if sample.inputs is None:
            return  # a generator: checked when the step is traced
        example = keras.tree.map_structure(lambda array: array[:1], sample.inputs)
        student_output = self.student(example, training=False)
        teacher_outputs = [model(example, training=False) for model in self.teachers]
        structure = step.of_value(student_output)
        if structure == step.SINGLE:
            student_output = step.named(student_output, structure)[None]
            teacher_outputs = [step.named(output, structure)[None] for output in teacher_outputs]
        options = {"teacher_classes": self.teacher_classes, "teacher_top_k": self.teacher_top_k}
        options["teacher"] = f"{len(self.teachers)} teachers" if len(self.teachers) > 1 else None
        models.check_structure_allowed(structure, type(self).__name__, self.takes_structured_outputs, options)
        models.check_outputs(self.student, self.teachers[0], student_output, teacher_outputs[0])
        if structure == step.SINGLE:
            shapes = [tuple(output.shape) for output in teacher_outputs]
            models.check_teacher_shapes(
                self.teachers, tuple(student_output.shape), self.student.name, self.teacher_classes, shapes
            )
            if self._teacher_output_kind_arg == "auto":
                for model, output in zip(self.teachers, teacher_outputs):
                    models.check_unread_probabilities(model, output)
        self._bind(self._plan, structure)

    def _check_cached_outputs(self, sample):
        if self.cached_outputs_refusal is not None:
            raise ValueError(self.cached_outputs_refusal)
        if not self._plan.single:
            raise ValueError(
                "Cached teacher outputs (keras_distill.with_teacher_outputs) hold one output; the models have "
                f"several ({list(self._plan.structure.names)}). Train from the live teacher."
            )
        teacher_shape = models.output_shape(self.teachers[0])
        expected = None
        if teacher_shape is not None:
            count = len(self.teachers)
            expected = (None,) + ((count,) if count > 1 else ()) + tuple(teacher_shape[1:])
        top_k = data.check_cached_outputs(sample, expected, len(self.teachers))
        if top_k is not None:
            models.check_top_k(
                top_k, argument="top_k", teacher_count=len(self.teachers), teacher_classes=self.teacher_classes
            )
            arguments.check_top_k_loss(top_k, self._plan.outputs[0].distillation_loss, self._standardize_logits)
            data.check_cached_top_k_indices(sample, self._classes(None))

    def _check_labels(self, sample):
        """Labels for every output trained on labels, each as its loss reads them."""
        if not sample.has_labels():
            if any(output.needs_labels for output in self._plan.outputs):
                raise self._missing_labels_error()
            return
        labels, _ = step.split_target(sample.all_targets)
        if labels is None:
            return
        labels = step.named_labels(labels, self._plan.structure)
        missing = sorted(str(o.name) for o in self._plan.trained_on_labels if o.name not in labels)
        if missing:
            raise ValueError(
                f"Outputs {missing} have a hard-label loss but no labels: y has "
                f"{sorted(labels)}. Pass y={{name: labels}} for every output named in `loss`, or drop "
                "their losses."
            )
        for output in self._plan.outputs:
            owner, classes = output.owner(self.student), self._classes(output.name)
            if output.hard_loss is not None:
                data.check_labels(labels[output.name], output.hard_loss, classes, owner=owner)
            elif output.needs_labels and output.name in labels:
                data.check_labels_read_by(output.distillation_loss, labels[output.name], classes, owner=owner)

    def _classes(self, name):
        """The number of classes of the student's output `name`, or None."""
        structure = self._structure or outputs.of_model(self.student)
        tensor = None if structure is None else outputs.output_tensor(self.student, name, structure)
        return None if tensor is None or not tensor.shape else tensor.shape[-1]

    # Saving: the models without their own compile config, the constructor's
    # arguments, and compile's, so that a loaded distiller trains on.

    def get_config(self):
        teachers = [saving.serialize_model(model) for model in self.teachers]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "student": saving.serialize_model(self.student),
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "teacher_output_kind": self._teacher_output_kind_arg,
            "teacher_weights": self._teacher_weights_arg,
            "teacher_classes": self.teacher_classes,
            "teacher_top_k": self.teacher_top_k,
            "separate_teacher_inputs": self.separate_teacher_inputs,
        }

    @classmethod
    def from_config(cls, config):
        config = saving.deserialize_models(config, ("student", "teacher"))
        if "teacher_outputs" in config:  # its name in files saved before it was renamed
            config["teacher_output_kind"] = config.pop("teacher_outputs")
        return cls(**config)

    def get_compile_config(self):
        return saving.compile_config(self, self._compiled_with)

    def compile_from_config(self, config):
        saving.compile_from_config(self, config, models_built=self.student.built)

    # pragma: no mutate end
