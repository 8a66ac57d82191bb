"""Distiller: soft-target knowledge distillation (Hinton et al., 2015)."""

import keras
from keras import ops

from keras_distill import losses as losses_module
from keras_distill import teacher_cache
from keras_distill.distillers import model_checks
from keras_distill.distillers import preprocessing
from keras_distill.distillers import replicas
from keras_distill.distillers import sequences
from keras_distill.distillers import teachers as teachers_module
from keras_distill.distillers.regularization import regularization_loss
from keras_distill.distillers.hyperparameters import DEFAULT_ALPHA
from keras_distill.distillers.hyperparameters import DEFAULT_TEMPERATURE
from keras_distill.distillers.hyperparameters import add_hyperparameter
from keras_distill.distillers.hyperparameters import as_float
from keras_distill.distillers.hyperparameters import resolve_temperature
from keras_distill.distillers.hyperparameters import validate_alpha
from keras_distill.distillers.hyperparameters import validate_temperature
from keras_distill.distillers.student_loss import resolve_student_loss
from keras_distill.losses import top_k

TEACHER_OUTPUTS = teachers_module.TEACHER_OUTPUTS


@keras.saving.register_keras_serializable(package="keras_distill")
class Distiller(keras.Model):
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
    forward pass. It is
    computed in `compute_loss` with `keras.ops` only, so it runs on
    TensorFlow, JAX and PyTorch, compiled or not; under a `tf.distribute`
    strategy its loss and gradients equal single-device training.

    The teacher is frozen at construction (`teacher.trainable = False`, as in
    `keras.distillation`), always runs with `training=False` and its outputs
    pass through `ops.stop_gradient`: its weights never change and it gets no
    optimizer slots. `predict` and `call` return the student's logits;
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
            large vocabularies. One teacher, `distillation_loss="kl"`.
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

    def __init__(
        self,
        student,
        teacher,
        teacher_outputs="auto",
        teacher_weights=None,
        teacher_classes=None,
        teacher_top_k=None,
        name="distiller",
        **kwargs,
    ):
        model_checks.check_model(student, "student")
        teachers = teachers_module.as_teacher_list(teacher)
        if any(student is model for model in teachers):
            raise ValueError(
                f"The same model {student.name!r} was passed as both `student` "
                "and `teacher`. Pass two models; to distill a model into a "
                "fresh copy of itself, use "
                "keras.models.clone_model(teacher) as the student."
            )
        teachers_module.validate_teacher_outputs(teacher_outputs)
        if model_checks.ends_with_softmax(student):
            raise ValueError(
                f"The student {student.name!r} ends in a softmax, so it outputs "
                "probabilities, but distillation needs its logits. Build the "
                "student's last layer without activation (activation=None), "
                "use from_logits=True in its loss, and add "
                "keras.layers.Softmax() after distillation if you need "
                "probabilities at serving time."
            )
        student_shape = model_checks.output_shape(student)
        for model in teachers:
            model_checks.check_logit_shapes(
                teachers_module.check_teacher_classes(
                    teacher_classes, model_checks.output_shape(model), student_shape, model.name
                ),
                student_shape,
                model.name,
                student.name,
            )
        weights = teachers_module.normalize_teacher_weights(teacher_weights, len(teachers))
        teachers_module.validate_top_k(teacher_top_k, len(teachers), teacher_classes, student_shape)
        super().__init__(name=name, **kwargs)
        self.student = student
        self.teachers = teachers
        for model in teachers:
            model.trainable = False
        self._teacher_outputs_arg = teacher_outputs
        self._teacher_weights_arg = None if teacher_weights is None else list(teacher_weights)
        self.teacher_weights = weights
        self.teacher_classes = None if teacher_classes is None else list(teacher_classes)
        self.teacher_top_k = teacher_top_k
        self._teacher_kinds = [
            teachers_module.output_kind(model, teacher_outputs) for model in teachers
        ]
        self.teacher_outputs = (
            self._teacher_kinds[0] if len(teachers) == 1 else list(self._teacher_kinds)
        )

        self._alpha = self._hyperparameter("alpha", DEFAULT_ALPHA)
        self._temperature = self._hyperparameter(
            "temperature", DEFAULT_TEMPERATURE
        )
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self._student_loss = None
        self._distillation_loss = None
        self._distillation_compile_config = None

    def _hyperparameter(self, name, value):
        return add_hyperparameter(self, name, value)

    @property
    def alpha(self):
        """The weight of the hard-label loss, a float in [0, 1]."""
        return as_float(self._alpha)

    @alpha.setter
    def alpha(self, value):
        value = validate_alpha(value)
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
        self._temperature.assign(validate_temperature(value))

    def compile(
        self,
        optimizer="adam",
        loss=None,
        metrics=None,
        *,
        alpha=None,
        temperature=None,
        distillation_loss=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        **kwargs,
    ):
        """Configures the distiller for training.

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
                `"logit_matching"`, a `keras_distill.losses` object (takes
                logits), or any other `keras.losses.Loss` such as
                `keras.losses.KLDivergence()`, which receives the softened
                teacher and student probabilities and is scaled by T^2, as in
                the keras.io tutorial.
            student_loss_fn: The keras.io tutorial's name for `loss`.
            distillation_loss_fn: The keras.io tutorial's name for
                `distillation_loss`.
            **kwargs: Passed to `keras.Model.compile` (`jit_compile`,
                `run_eagerly`, `steps_per_execution`, ...).
        """
        loss = _pick("loss", loss, "student_loss_fn", student_loss_fn)
        distillation_loss = _pick(
            "distillation_loss",
            distillation_loss,
            "distillation_loss_fn",
            distillation_loss_fn,
        )
        if distillation_loss is None:
            distillation_loss = "kl"
        alpha = DEFAULT_ALPHA if alpha is None else validate_alpha(alpha)
        resolved = losses_module.get(distillation_loss)
        temperature = resolve_temperature(distillation_loss, resolved, temperature)
        student_loss = resolve_student_loss(loss)
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

        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._student_loss = student_loss
        if teachers_module.top_k_needs_kl(self.teacher_top_k, resolved):
            raise ValueError(
                f"teacher_top_k={self.teacher_top_k} distills with the top-k KL "
                "divergence only. Received: distillation_loss="
                f"{distillation_loss!r}. Use distillation_loss='kl', or a dense "
                "teacher (teacher_top_k=None) for other losses."
            )
        self._distillation_loss = self._bind_temperature(resolved)
        self._top_k_loss = top_k.TopKKLDivergence(temperature=self._temperature)
        self._alpha.assign(alpha)
        self._temperature.assign(temperature)
        self._distillation_compile_config = {
            "loss": loss,
            "metrics": metrics,
            "alpha": alpha,
            "temperature": temperature,
            "distillation_loss": distillation_loss,
            **kwargs,
        }

    def _bind_temperature(self, loss):
        """A private copy of `loss` that reads this distiller's temperature."""
        if not losses_module.lookup.is_logit_loss(loss):
            return loss
        loss = loss.__class__.from_config(loss.get_config())
        if loss.uses_temperature:
            loss.temperature = self._temperature
        return loss

    def get_compile_config(self):
        if not self.compiled or self._distillation_compile_config is None:
            return {}
        serialize = keras.saving.serialize_keras_object
        return {
            "optimizer": serialize(self.optimizer),
            **{
                key: serialize(value)
                for key, value in self._distillation_compile_config.items()
            },
        }

    def compile_from_config(self, config):
        config = {
            key: keras.saving.deserialize_keras_object(value)
            for key, value in config.items()
        }
        self.compile(**config)
        if self.student.built:
            # Create the optimizer's slots now, so that the saved ones load.
            self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    @property
    def teacher(self):
        """The teacher, or the list of teachers when there are several."""
        return self.teachers[0] if len(self.teachers) == 1 else list(self.teachers)

    def compute_teacher_logits(self, x):
        """The teacher's float32 logits for inputs `x`, without gradient.

        With several teachers, logits whose temperature softmax is the
        teachers' weighted mixture of softened distributions.
        """
        return self._combine_teachers(
            [
                self.as_teacher_logits(model(x, training=False), kind)
                for model, kind in zip(self.teachers, self._teacher_kinds)
            ]
        )

    def cached_teacher_logits(self, cached):
        """Float32 teacher logits (or packed top-k) from a batch of
        `keras_distill.precompute_teacher_outputs`: the teacher is not run."""
        if isinstance(cached, dict):
            return ops.stop_gradient(
                top_k.pack_top_k(cached[teacher_cache.TOP_K_INDICES], cached[teacher_cache.TOP_K_LOG_PROBS])
            )
        if len(self.teachers) == 1:
            outputs = [cached]
        else:
            outputs = [cached[:, index] for index in range(len(self.teachers))]
        return self._combine_teachers(
            [self.as_teacher_logits(output, "logits") for output in outputs]
        )

    def _combine_teachers(self, logits):
        if len(logits) == 1:
            return logits[0]
        return ops.stop_gradient(
            teachers_module.mixture_logits(logits, self.teacher_weights, self._temperature)
        )

    def as_teacher_logits(self, outputs, kind=None):
        """A teacher's final outputs as float32 logits of the student's
        classes, without gradient."""
        outputs = ops.cast(outputs, "float32")
        if (kind or self._teacher_kinds[0]) == "probabilities":
            outputs = ops.log(ops.maximum(outputs, teachers_module.LOG_FLOOR))
        outputs = teachers_module.select_classes(outputs, self.teacher_classes)
        return ops.stop_gradient(outputs)

    def compute_distillation_loss(
        self, teacher_logits, student_logits, sample_weight=None, top_k=False
    ):
        """The distillation term, averaged over the batch (before `1 - alpha`)."""
        loss = self._distillation_loss
        if top_k:
            return self._top_k_loss(teacher_logits, student_logits, sample_weight=sample_weight)
        if losses_module.lookup.is_logit_loss(loss):
            return loss(teacher_logits, student_logits, sample_weight=sample_weight)
        temperature = self._temperature
        soften = losses_module.distillation_loss.soften
        teacher_probs = ops.exp(soften(teacher_logits, temperature))
        student_probs = ops.exp(soften(student_logits, temperature))
        return ops.square(temperature) * ops.cast(
            loss(teacher_probs, student_probs, sample_weight=sample_weight),
            "float32",
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        y, cached = teacher_cache.split_target(y)
        if cached is None:
            teacher_logits = self.teacher_targets(self.compute_teacher_logits(x))
        else:
            teacher_logits = self.cached_teacher_logits(cached)
        sample_weight, _ = sequences.token_weights(x, y_pred, sample_weight)
        top_k_targets = self.teacher_top_k is not None or isinstance(cached, dict)
        return self.response_loss(
            y, teacher_logits, y_pred, sample_weight, top_k=top_k_targets
        ) + self._regularization_loss()

    def teacher_targets(self, teacher_logits):
        """The teacher's logits, or with `teacher_top_k` its packed top-k
        (`keras_distill.losses.pack_top_k`)."""
        if self.teacher_top_k is None:
            return teacher_logits
        return top_k.pack_top_k(*top_k.top_k_teacher(teacher_logits, self.teacher_top_k))

    def response_loss(self, y, teacher_logits, student_logits, sample_weight=None, top_k=False):
        """`alpha * loss(y, student) + (1 - alpha) * distillation_loss`,
        recorded in the `student_loss` and `distillation_loss` metrics.
        With `top_k=True`, `teacher_logits` holds packed top-k targets."""
        if not top_k:
            model_checks.check_logit_shapes(
                teacher_logits.shape,
                student_logits.shape,
                self.teachers[0].name,
                self.student.name,
            )
        if self._student_loss is None:
            student_loss = ops.zeros((), dtype="float32")
        else:
            if y is None:
                raise ValueError(
                    "The distiller was compiled with a hard-label loss but got "
                    "no labels (y=None). Pass labels to fit()/evaluate(), or "
                    "compile with loss=None and alpha=0.0 to distill from "
                    "unlabeled data."
                )
            student_loss = ops.cast(
                self._student_loss(y, student_logits, sample_weight=sample_weight),
                "float32",
            )
        distillation_loss = self.compute_distillation_loss(
            teacher_logits, student_logits, sample_weight, top_k=top_k
        )
        total = self._alpha * student_loss + (1.0 - self._alpha) * distillation_loss
        batch_size = ops.shape(student_logits)[0]
        self.student_loss_tracker.update_state(
            replicas.unscale(student_loss), sample_weight=batch_size
        )
        self.distillation_loss_tracker.update_state(
            replicas.unscale(distillation_loss), sample_weight=batch_size
        )
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = teacher_cache.split_target(y)
        _, sample_weight = sequences.token_weights(x, y_pred, sample_weight)
        return super().compute_metrics(x, labels, y_pred, sample_weight)

    def _regularization_loss(self):
        """The student's own losses (`add_loss`, regularizers), summed.

        `self.losses` is read rather than `self.student.losses` because the
        JAX trainer hands the forward pass's losses to `compute_loss` through
        it; the teacher's activity-regularization losses are left out.
        """
        teacher_losses = [loss for model in self.teachers for loss in model.losses]
        return regularization_loss(self.losses, teacher_losses)

    def _check_compiled(self, method):
        if not self.compiled or self._distillation_loss is None:
            raise ValueError(
                f"{type(self).__name__}.{method}() was called before compile(). "
                f"Call {type(self).__name__.lower()}.compile(optimizer=..., "
                "loss=..., alpha=..., temperature=...) first; see "
                f"help(keras_distill.{type(self).__name__}.compile)."
            )

    def _check_output_shapes(self, x):
        """Compares the two models' outputs on one example of `x`, when
        their shapes are not known statically (subclassed models).

        A mismatch found later, while tracing the first step, would leave
        the JAX trainer's variables unsynced; here nothing has run yet.
        """
        shapes = [model_checks.output_shape(model) for model in self.teachers]
        if None not in shapes and model_checks.output_shape(self.student) is not None:
            return
        try:
            example = keras.tree.map_structure(lambda array: array[:1], x)
        except (TypeError, IndexError, KeyError):
            return  # a dataset or generator: checked when the step is traced
        student_shape = self.student(example, training=False).shape
        for model in self.teachers:
            model_checks.check_logit_shapes(
                teachers_module.check_teacher_classes(
                    self.teacher_classes,
                    model(example, training=False).shape,
                    student_shape,
                    model.name,
                ),
                student_shape,
                model.name,
                self.student.name,
            )

    def _check_cached_outputs(self, x, y):
        teacher_cache.check_cached_outputs(
            x, y, self.teachers, self.teacher_classes, self._distillation_loss
        )

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("fit")
        if preprocessing.needs_preprocessing(self.student, x):
            # Shuffled before batching, inside the dataset.
            x, y = preprocessing.preprocess_arguments(
                self.student, x, y, kwargs, shuffle=kwargs.pop("shuffle", True)
            )
            kwargs["shuffle"] = False
        validation = kwargs.get("validation_data")
        if validation is not None and not isinstance(validation, (tuple, list)):
            validation = (validation,)
        if validation is not None and preprocessing.needs_preprocessing(self.student, validation[0]):
            kwargs["validation_data"] = preprocessing.preprocess(
                self.student, *validation, batch_size=kwargs.get("validation_batch_size") or kwargs.get("batch_size")
            )
        self._check_output_shapes(x)
        self._check_cached_outputs(x, y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) > 1:
            self._check_cached_outputs(validation[0], validation[1])
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("evaluate")
        x, y = preprocessing.preprocess_arguments(self.student, x, y, kwargs)
        self._check_output_shapes(x)
        self._check_cached_outputs(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        if preprocessing.needs_preprocessing(self.student, x):
            x = preprocessing.preprocess(self.student, x, batch_size=kwargs.pop("batch_size", None))
        return super().predict(x, *args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self._check_compiled("train_on_batch")
        return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        self._check_compiled("test_on_batch")
        return super().test_on_batch(*args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "student": model_checks.serialize_model(self.student),
            "teacher": (
                model_checks.serialize_model(self.teachers[0])
                if len(self.teachers) == 1
                else [model_checks.serialize_model(model) for model in self.teachers]
            ),
            "teacher_outputs": self._teacher_outputs_arg,
            "teacher_weights": self._teacher_weights_arg,
            "teacher_classes": self.teacher_classes,
            "teacher_top_k": self.teacher_top_k,
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


def _pick(name, value, alias, alias_value):
    if alias_value is None:
        return value
    if value is not None:
        raise ValueError(
            f"Both `{name}` and `{alias}` were given to compile(). `{alias}` "
            f"is the keras.io tutorial's name for `{name}`: pass only one."
        )
    return alias_value
