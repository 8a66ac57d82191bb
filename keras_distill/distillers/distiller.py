"""Distiller: soft-target knowledge distillation (Hinton et al., 2015)."""

import keras

from keras_distill._compat import UniqueTorchParameters
from keras_distill._training import checks
from keras_distill._training import loss_specs
from keras_distill._training import step
from keras_distill._training import structured
from keras_distill._training.compile_config import CompileConfigMixin
from keras_distill._training.compile_config import DistillerConfigMixin
from keras_distill._training.compile_config import build_distillation_loss
from keras_distill._training.compile_config import pick
from keras_distill._training.compile_config import resolve_compile_arguments
from keras_distill._training.entry_points import EntryPointsMixin
from keras_distill._training.hyperparameters import DEFAULT_ALPHA
from keras_distill._training.hyperparameters import DEFAULT_TEMPERATURE
from keras_distill._training.hyperparameters import SoftTargetSettingsMixin
from keras_distill._training.hyperparameters import add_hyperparameter
from keras_distill._training.ownership import FrozenTeachersMixin
from keras_distill._training.preflight import PreflightMixin
from keras_distill._training.response_step import ResponseStepMixin
from keras_distill._training.structured_compile import StructuredOutputsMixin
from keras_distill.losses.top_k_divergence import TopKKLDivergence


@keras.saving.register_keras_serializable(package="keras_distill")
class Distiller(
    UniqueTorchParameters,
    EntryPointsMixin,
    PreflightMixin,
    SoftTargetSettingsMixin,
    FrozenTeachersMixin,
    DistillerConfigMixin,
    StructuredOutputsMixin,
    ResponseStepMixin,
    CompileConfigMixin,
    keras.Model,
):
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
            outputs), with `keras_distill.losses.top_k_kl_divergence`; for
            large vocabularies. One teacher, `distillation_loss="kl"`. A
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

    takes_separate_teacher_inputs = True
    takes_structured_outputs = True
    _plan = None

    def __init__(
        self,
        *models,
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
        checks.check_model_keywords(type(self).__name__, models, student, teacher)
        loss_specs.refuse_constructor_arguments(type(self).__name__, kwargs)
        teachers, kinds, weights, structure = checks.check_distiller_models(
            type(self).__name__,
            student,
            teacher,
            teacher_output_kind,
            teacher_weights,
            teacher_classes,
            teacher_top_k,
            separate_teacher_inputs,
            takes_separate_teacher_inputs=self.takes_separate_teacher_inputs,
            structured_outputs=self.takes_structured_outputs,
        )
        super().__init__(name=name, **kwargs)
        self._structure = structure
        self.student = student
        self.teachers = teachers
        self._teacher_output_kind_arg = teacher_output_kind
        self._teacher_weights_arg = None if teacher_weights is None else list(teacher_weights)
        self.teacher_weights = weights
        self.teacher_classes = None if teacher_classes is None else list(teacher_classes)
        self.teacher_top_k = teacher_top_k
        self.teacher_output_kind = kinds[0] if len(teachers) == 1 else kinds
        self.separate_teacher_inputs = separate_teacher_inputs

        self._alpha = add_hyperparameter(self, "alpha", DEFAULT_ALPHA)
        self._temperature = add_hyperparameter(self, "temperature", DEFAULT_TEMPERATURE)
        self._targets = step.TeacherTargets(
            kinds, self._temperature, weights=weights, classes=self.teacher_classes, top_k=teacher_top_k
        )
        self._top_k_loss = TopKKLDivergence(temperature=self._temperature)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self._student_loss = None
        self._distillation_loss = None
        self._standardize_logits = False
        # Built when its models are, so that load_weights, BackupAndRestore
        # and KerasTuner's checkpoints work before the first step.
        self.built = student.built and all(model.built for model in teachers)

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
        checks.check_metrics(metrics, type(self).__name__)
        given = {
            "loss": pick("loss", loss, "student_loss_fn", student_loss_fn),
            "distillation_loss": pick(
                "distillation_loss", distillation_loss, "distillation_loss_fn", distillation_loss_fn
            ),
        }
        if self._structure is not None or any(structured.is_structured_argument(v) for v in given.values()):
            alpha = pick("alpha", alpha, "student_loss_weight", student_loss_weight)
            return self._compile_structured(
                optimizer,
                metrics=metrics,
                alpha=alpha,
                temperature=temperature,
                distillation_loss_weights=distillation_loss_weights,
                standardize_logits=standardize_logits,
                **given,
                **kwargs,
            )
        loss, distillation_loss, alpha, temperature, student_loss, resolved = resolve_compile_arguments(
            loss,
            student_loss_fn,
            distillation_loss,
            distillation_loss_fn,
            alpha,
            temperature,
            standardize_logits,
            kwargs,
            teacher_top_k=self.teacher_top_k,
            separate_teacher_inputs=self.separate_teacher_inputs,
            distillation_loss_weights=distillation_loss_weights,
            student_loss_weight=student_loss_weight,
        )
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._set_compiled(
            student_loss,
            build_distillation_loss(resolved, self._temperature),
            None,
            standardize_logits,
            alpha,
            temperature,
            loss=loss,
            metrics=metrics,
            distillation_loss=distillation_loss,
            distillation_loss_weights=distillation_loss_weights,
            **kwargs,
        )

    def _models_built(self):
        return self.student.built

    def _frozen_models(self):
        return self.teachers

    def call(self, inputs, training=None):
        return self.student(self._student_inputs(inputs), training=training)

    @property
    def teacher(self):
        """The teacher, or the list of teachers when there are several."""
        return self.teachers[0] if len(self.teachers) == 1 else list(self.teachers)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self._plan is not None:
            return self._structured_loss(x, y, y_pred, sample_weight) + self._regularization_loss()
        student_x, teacher_x = (x["student"], x["teacher"]) if self.separate_teacher_inputs else (x, x)
        labels, targets, _ = self._teacher_targets(teacher_x, y)
        loss_weights, _ = step.token_weights(student_x, y_pred, sample_weight)
        return self._response_loss(labels, targets, y_pred, loss_weights) + self._regularization_loss()
