"""Distiller: soft-target knowledge distillation (Hinton et al., 2015)."""

import keras
from keras import ops

from keras_distill._compat import UniqueTorchParameters
from keras_distill._training import checks
from keras_distill._training import data_checks
from keras_distill._training import hub
from keras_distill._training import step
from keras_distill._training.compile_config import CompileConfigMixin
from keras_distill._training.compile_config import build_distillation_loss
from keras_distill._training.compile_config import pick
from keras_distill._training.compile_config import resolve_hard_loss
from keras_distill._training.compile_config import serialize_model
from keras_distill._training.hyperparameters import DEFAULT_ALPHA
from keras_distill._training.hyperparameters import DEFAULT_TEMPERATURE
from keras_distill._training.hyperparameters import add_hyperparameter
from keras_distill._training.hyperparameters import as_float
from keras_distill._training.hyperparameters import check_alpha
from keras_distill._training.hyperparameters import resolve_temperature
from keras_distill._training.ownership import FrozenTeachersMixin
from keras_distill._training.ownership import check_not_shared
from keras_distill._training.ownership import weights_kept_on_failure
from keras_distill.losses.base import check_temperature
from keras_distill.losses.lookup import get as get_distillation_loss
from keras_distill.losses.standardization import standardize_logits as standardize
from keras_distill.losses.top_k_divergence import TopKKLDivergence


@keras.saving.register_keras_serializable(package="keras_distill")
class Distiller(UniqueTorchParameters, FrozenTeachersMixin, CompileConfigMixin, keras.Model):
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
    `evaluate` reports the student's metrics.

    `alpha` and `temperature` live in float32 variables (`distiller.alpha`,
    `distiller.temperature`); `keras_distill.callbacks.AlphaScheduler` and
    `TemperatureScheduler` change them between epochs without retracing.

    Args:
        student: `keras.Model`. Outputs logits of shape `(batch, ...,
            num_classes)`. A student that ends in a softmax is refused: its
            logits are needed.
        teacher: `keras.Model` with the student's output shape, or a list
            of them: the distillation target is then the weighted mixture
            of the teachers' temperature-softened distributions.
        teacher_outputs: `"auto"` (default), `"logits"` or
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
    keras_distill.Distiller(student, teacher=[teacher_a, teacher_b], teacher_weights=[2, 1])
    keras_distill.Distiller(student_3_classes, teacher, teacher_classes=[3, 5, 7])
    ```

    Reference:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531)
        - [Wang et al., 2022](https://openaccess.thecvf.com/content/ACCV2022/html/Wang_Class_Specialized_Knowledge_Distillation_ACCV_2022_paper.html)
    """

    takes_separate_teacher_inputs = True
    #: Why a subclass that runs its teacher live refuses cached teacher
    #: outputs (None: cached outputs are taken).
    cached_outputs_refusal = None

    def __init__(
        self,
        student,
        teacher,
        teacher_outputs="auto",
        teacher_weights=None,
        teacher_classes=None,
        teacher_top_k=None,
        separate_teacher_inputs=False,
        name="distiller",
        **kwargs,
    ):
        checks.check_student(student)
        teachers = checks.as_teacher_list(teacher)
        if any(student is model for model in teachers):
            raise ValueError(
                f"The same model {student.name!r} was passed as both `student` "
                "and `teacher`. Pass two models; to distill a model into a "
                "fresh copy of itself, use "
                "keras.models.clone_model(teacher) as the student."
            )
        check_not_shared(student, teachers)
        kinds = [checks.output_kind(model, teacher_outputs) for model in teachers]
        student_shape = checks.output_shape(student)
        if not isinstance(separate_teacher_inputs, bool):
            raise TypeError(
                "`separate_teacher_inputs` must be True or False. Received: "
                f"separate_teacher_inputs={separate_teacher_inputs!r}."
            )
        if separate_teacher_inputs and not self.takes_separate_teacher_inputs:
            raise ValueError(
                f"{type(self).__name__} feeds the teacher and the student the same inputs. Distill a teacher "
                "with its own tokenizer with keras_distill.Distiller(student, teacher, "
                "separate_teacher_inputs=True)."
            )
        if separate_teacher_inputs:
            checks.check_separate_inputs(teachers, teacher_classes, teacher_top_k)
        else:
            checks.check_teacher_shapes(teachers, student_shape, student.name, teacher_classes)
        weights = checks.normalize_teacher_weights(teacher_weights, len(teachers))
        checks.check_top_k(
            teacher_top_k,
            teacher_count=len(teachers),
            teacher_classes=teacher_classes,
            classes=None if student_shape is None else student_shape[-1],
        )
        super().__init__(name=name, **kwargs)
        self.student = student
        self.teachers = teachers
        self._teacher_outputs_arg = teacher_outputs
        self._teacher_weights_arg = None if teacher_weights is None else list(teacher_weights)
        self.teacher_weights = weights
        self.teacher_classes = None if teacher_classes is None else list(teacher_classes)
        self.teacher_top_k = teacher_top_k
        self.teacher_outputs = kinds[0] if len(teachers) == 1 else kinds
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

    @property
    def alpha(self):
        """The weight of the hard-label loss, a float in [0, 1]."""
        return as_float(self._alpha)

    @alpha.setter
    def alpha(self, value):
        value = check_alpha(value)
        if value > 0 and self.compiled and self._student_loss is None:
            raise ValueError(
                f"Cannot set alpha={value}: the distiller was compiled with "
                "loss=None, so there is no hard-label loss to weight. "
                "Recompile with a loss, e.g. loss=keras.losses."
                "SparseCategoricalCrossentropy(from_logits=True)."
            )
        self._alpha.assign(value)

    @property
    def temperature(self):
        """The softmax temperature of the distillation loss, a float > 0."""
        return as_float(self._temperature)

    @temperature.setter
    def temperature(self, value):
        self._temperature.assign(check_temperature(value))

    def compile(
        self,
        optimizer="adam",
        loss=None,
        metrics=None,
        *,
        alpha=None,
        temperature=None,
        distillation_loss=None,
        standardize_logits=False,
        student_loss_fn=None,
        distillation_loss_fn=None,
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
            standardize_logits: bool. Z-score both models' logits over the
                classes before the distillation loss (logit standardization,
                Sun et al., 2024; `keras_distill.losses.standardize_logits`),
                so that the student matches the shape of the teacher's
                logits, not their range. Composes with every dense loss.
            student_loss_fn: The keras.io tutorial's name for `loss`.
            distillation_loss_fn: The keras.io tutorial's name for
                `distillation_loss`.
            **kwargs: Passed to `keras.Model.compile` (`jit_compile`,
                `run_eagerly`, `steps_per_execution`, ...).
        """
        loss = pick("loss", loss, "student_loss_fn", student_loss_fn)
        distillation_loss = pick("distillation_loss", distillation_loss, "distillation_loss_fn", distillation_loss_fn)
        if distillation_loss is None:
            distillation_loss = "kl"
        alpha = DEFAULT_ALPHA if alpha is None else check_alpha(alpha)
        resolved = get_distillation_loss(distillation_loss)
        temperature = resolve_temperature(distillation_loss, temperature)
        student_loss = resolve_hard_loss(loss)
        if student_loss is None and alpha > 0:
            raise ValueError(
                f"compile() got loss=None with alpha={alpha}: the hard-label "
                "term has no loss. Pass e.g. loss=keras.losses."
                "SparseCategoricalCrossentropy(from_logits=True), or set "
                "alpha=0.0 to train on the teacher's outputs alone."
            )
        if "loss_weights" in kwargs:
            raise ValueError(
                "Distiller.compile() takes no `loss_weights`. Received: "
                f"loss_weights={kwargs['loss_weights']!r}. Use `alpha` to "
                "weight the hard-label and distillation terms."
            )
        if not isinstance(standardize_logits, bool):
            raise TypeError(
                "`standardize_logits` must be True or False. Received: "
                f"standardize_logits={standardize_logits!r}."
            )
        checks.check_top_k(self.teacher_top_k, loss=resolved, standardize=standardize_logits)
        if self.separate_teacher_inputs:
            checks.check_loss_across_vocabularies(resolved, distillation_loss)

        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._student_loss = student_loss
        self._distillation_loss = build_distillation_loss(resolved, self._temperature)
        self._standardize_logits = standardize_logits
        self._alpha.assign(alpha)
        self._temperature.assign(temperature)
        self._remember_compile_arguments(
            loss=loss,
            metrics=metrics,
            alpha=alpha,
            temperature=temperature,
            distillation_loss=distillation_loss,
            standardize_logits=standardize_logits,
            **kwargs,
        )

    def _models_built(self):
        return self.student.built

    def _frozen_models(self):
        return self.teachers

    def call(self, inputs, training=None):
        return self.student(self._student_inputs(inputs), training=training)

    def _student_inputs(self, x):
        """The student's part of `x` (all of it, unless the teacher has its
        own inputs)."""
        if self.separate_teacher_inputs and isinstance(x, dict) and set(x) == {"student", "teacher"}:
            return x["student"]
        return x

    def _teacher_inputs(self, x):
        return x["teacher"] if self.separate_teacher_inputs else x

    @property
    def teacher(self):
        """The teacher, or the list of teachers when there are several."""
        return self.teachers[0] if len(self.teachers) == 1 else list(self.teachers)

    def compute_teacher_logits(self, x):
        """The float32 logits the student is distilled towards, for inputs
        `x`, without gradient: the teachers' mixture, of the student's
        classes (before any top-k)."""
        outputs, _ = self._run_teachers(x)
        return self._targets.logits(outputs)

    def _run_teachers(self, x):
        """The teachers' outputs on `x` (a list), and their tapped features
        (a dict; none here)."""
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

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels, targets, _ = self._teacher_targets(self._teacher_inputs(x), y)
        loss_weights, _ = step.token_weights(self._student_inputs(x), y_pred, sample_weight)
        return self._response_loss(labels, targets, y_pred, loss_weights) + self._regularization_loss()

    def _response_loss(self, labels, targets, student_logits, sample_weight):
        """`alpha * loss(y, student) + (1 - alpha) * distillation_loss`,
        recorded in the `student_loss` and `distillation_loss` metrics."""
        if not targets.top_k and not self.separate_teacher_inputs:
            checks.check_logit_shapes(
                targets.values.shape, student_logits.shape, self.teachers[0].name, self.student.name
            )
        loss = self._top_k_loss if targets.top_k else self._distillation_loss
        needs_labels = getattr(loss, "needs_labels", False)
        if labels is None and (self._student_loss is not None or needs_labels):
            raise self._missing_labels_error()
        if self._student_loss is None:
            student_loss = ops.zeros((), dtype="float32")
        else:
            student_loss = ops.cast(self._student_loss(labels, student_logits, sample_weight=sample_weight), "float32")
        teacher_logits, distilled_logits = targets.values, student_logits
        if self._standardize_logits:
            teacher_logits, distilled_logits = standardize(teacher_logits), standardize(student_logits)
        teacher_side = (teacher_logits, labels) if needs_labels else teacher_logits
        distillation_loss = loss(teacher_side, distilled_logits, sample_weight=sample_weight)
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
        _, metric_weights = step.token_weights(self._student_inputs(x), y_pred, sample_weight)
        return super().compute_metrics(x, labels, y_pred, metric_weights)

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
        shapes = [checks.output_shape(model) for model in self.teachers]
        if None not in shapes and checks.output_shape(self.student) is not None:
            return
        try:
            example = keras.tree.map_structure(lambda array: array[:1], x)
        except (TypeError, IndexError, KeyError):
            return  # a dataset or generator: checked when the step is traced
        student_shape = tuple(self.student(example, training=False).shape)
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
            x, y, self.teachers, self.teacher_classes, self._distillation_loss, self._standardize_logits,
            classes=self._classes(),
        )

    def _classes(self):
        shape = checks.output_shape(self.student)
        return None if shape is None else shape[-1]

    def _preflight(self, x, y, class_weight=None):
        """Every check of `fit` / `evaluate` data that can run before a step:
        output shapes, cached outputs, labels (present, in range, in the
        loss's format) and finite inputs."""
        if self.separate_teacher_inputs:
            data_checks.check_separate_inputs(x, y)
        else:
            self._check_output_shapes(x)
        self._check_cached_outputs(x, y)
        data_checks.check_class_weight(x, y, class_weight)
        if not data_checks.has_labels(x, y) and (
            self._student_loss is not None or getattr(self._distillation_loss, "needs_labels", False)
        ):
            raise self._missing_labels_error()
        inputs, targets = data_checks.sample(x, y)
        labels, _ = step.split_target(targets)
        data_checks.check_labels(labels, self._student_loss, self._classes(), owner=f"the student {self.student.name!r}")
        data_checks.check_finite_inputs(inputs)

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

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("fit")
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
        self._preflight(x, y, kwargs.get("class_weight"))
        validation = data_checks.validation_pair(kwargs)
        if validation is not None:
            self._preflight(*validation)
        with weights_kept_on_failure(self):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("evaluate")
        x, y = hub.preprocess_arguments(self.student, x, y, kwargs)
        self._preflight(x, y)
        with weights_kept_on_failure(self):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        if hub.needs_preprocessing(self.student, x):
            x = hub.preprocess(self.student, x, batch_size=kwargs.pop("batch_size", None))
        with weights_kept_on_failure(self):
            return super().predict(x, *args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self._check_compiled("train_on_batch")
        return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        self._check_compiled("test_on_batch")
        return super().test_on_batch(*args, **kwargs)

    def get_config(self):
        teachers = [serialize_model(model) for model in self.teachers]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "student": serialize_model(self.student),
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "teacher_outputs": self._teacher_outputs_arg,
            "teacher_weights": self._teacher_weights_arg,
            "teacher_classes": self.teacher_classes,
            "teacher_top_k": self.teacher_top_k,
            "separate_teacher_inputs": self.separate_teacher_inputs,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        teacher = config["teacher"]
        config["teacher"] = (
            [keras.saving.deserialize_keras_object(model) for model in teacher]
            if isinstance(teacher, list)
            else keras.saving.deserialize_keras_object(teacher)
        )
        return cls(**config)
