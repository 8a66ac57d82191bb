"""MutualLearner: Deep Mutual Learning (Zhang et al., 2018)."""

import keras
from keras import ops

from keras_distill._compat import UniqueTorchParameters
from keras_distill._training import guards
from keras_distill._training import saving
from keras_distill._training import step
from keras_distill._training.checks import arguments
from keras_distill._training.checks import data as data_checks
from keras_distill._training.checks import models as checks
from keras_distill._training.hyperparameters import add_hyperparameter
from keras_distill._training.hyperparameters import as_float
from keras_distill._training.peer_optimizer import PeerOptimizer
from keras_distill.losses.base import check_temperature
from keras_distill.losses.soft_targets import SoftTargetKLDivergence

_ACCURACY = ("accuracy", "acc")


@keras.saving.register_keras_serializable(package="keras_distill")
class MutualLearner(UniqueTorchParameters, keras.Model):
    """A cohort of peers, each trained on the labels and on the others.

    Peer `k` minimizes

        loss(y, z_k) + 1/(K-1) * sum over l != k of T^2 * KL(p_l || p_k)

    with `p = softmax(z / T)` and every peer target `p_l` held constant
    (`ops.stop_gradient`): a peer's weights get gradient from its own loss
    only. All peers train in one `fit` call, one compiled step, summing the
    K losses (their gradients do not mix). `history` and `evaluate` report
    `{peer}_loss` and `{peer}_{metric}` for every peer; `loss` is the sum.

    Args:
        models: list of K >= 2 distinct `keras.Model`s returning logits of
            the same shape, with distinct names. Architectures may differ.
        temperature: float > 0. Defaults to 1.0, as in the paper.
        name: Name of the learner.

    Examples:

    ```python
    learner = keras_distill.MutualLearner(models=[net_a, net_b])
    learner.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    learner.fit(x_train, y_train, epochs=10)
    learner.evaluate(x_test, y_test)   # net_a_accuracy, net_b_accuracy, ...
    learner.models[0].save("a.keras")
    ```

    Reference:
        - [Zhang et al., 2018](https://arxiv.org/abs/1706.00384)
    """

    def __init__(self, models, temperature=1.0, name="mutual_learner", **kwargs):
        models = checks.check_model_list(
            models,
            "models",
            minimum=2,
            needs="MutualLearner needs a cohort of at least two models",
            example="[net_a, net_b]",
        )
        names = [model.name for model in models]
        if len(set(names)) != len(names):
            raise ValueError(
                f"The peers' names must differ: they name their losses and "
                f"metrics. Received names {names}. Give each model a "
                "name=... when building it."
            )
        for model in models:
            if checks.ends_with_softmax(model):
                raise ValueError(
                    f"Peer {model.name!r} ends in a softmax, but mutual learning "
                    "needs logits. Build its last layer with activation=None."
                )
        super().__init__(name=name, **kwargs)
        self.peers = list(models)
        self._temperature = add_hyperparameter(self, "temperature", check_temperature(temperature))
        self._mimicry = SoftTargetKLDivergence(temperature=self._temperature)
        self.peer_loss_trackers = [keras.metrics.Mean(name=f"{model.name}_loss") for model in models]
        self.peer_metrics = []
        self._metric_owners = []
        self._peer_loss = None
        self._compiled_with = None

    @property
    def models(self):
        """The peers, in the order given."""
        return list(self.peers)

    @property
    def temperature(self):
        return as_float(self._temperature)

    @temperature.setter
    def temperature(self, value):
        self._temperature.assign(check_temperature(value))

    def compile(self, optimizer="adam", loss=None, metrics=None, *, temperature=None, **kwargs):
        """Configures the cohort.

        Args:
            optimizer: One optimizer for all peers (each variable gets its
                own slots, so the peers still train independently), or a
                list with one optimizer per peer, e.g. different learning
                rates.
            loss: Hard-label loss on each peer's logits, e.g.
                `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`.
            metrics: Metrics computed for every peer, e.g. `["accuracy"]`.
            temperature: float > 0, or None to keep the current one.
            **kwargs: Passed to `keras.Model.compile` (`jit_compile`, ...).
        """
        peer_loss = arguments.resolve_hard_loss(loss)
        if peer_loss is None:
            raise ValueError(
                "MutualLearner.compile() needs a hard-label `loss`. Pass e.g. "
                "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
            )
        for argument in ("loss_weights", "weighted_metrics"):
            if argument in kwargs:
                raise ValueError(f"MutualLearner.compile() takes no `{argument}`.")
        temperature = self.temperature if temperature is None else check_temperature(temperature)
        if isinstance(optimizer, (list, tuple)):
            optimizer = PeerOptimizer(optimizer)
        if isinstance(optimizer, PeerOptimizer):
            optimizer.set_groups([model.trainable_variables for model in self.peers])
        # One flat list, so that Keras tracks every metric's variables.
        per_peer = [_peer_metrics(metrics, model.name, peer_loss) for model in self.peers]
        super().compile(optimizer=optimizer, loss=None, metrics=None, **kwargs)
        self._peer_loss = peer_loss
        self.peer_metrics = [metric for group in per_peer for metric in group]
        self._metric_owners = [index for index, group in enumerate(per_peer) for _ in group]
        self._temperature.assign(temperature)
        self._compiled_with = saving.CompileArguments(loss=loss, metrics=metrics, temperature=temperature, **kwargs)

    def call(self, inputs, training=None):
        return [model(inputs, training=training) for model in self.peers]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self._peer_loss is None:
            raise ValueError("Call MutualLearner.compile(optimizer=..., loss=...) first.")
        targets = [ops.stop_gradient(ops.cast(logits, "float32")) for logits in y_pred]
        count = len(y_pred)
        total = ops.zeros((), dtype="float32")
        batch_size = ops.shape(y_pred[0])[0]
        for index, logits in enumerate(y_pred):
            hard = ops.cast(self._peer_loss(y, logits, sample_weight=sample_weight), "float32")
            mimicry = sum(
                self._mimicry(targets[other], logits, sample_weight=sample_weight)
                for other in range(count)
                if other != index
            ) / (count - 1)
            peer_loss = hard + mimicry
            self.peer_loss_trackers[index].update_state(step.unscale(peer_loss), sample_weight=batch_size)
            total = total + peer_loss
        return total + step.regularization_loss(self.losses, [])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for owner, metric in zip(self._metric_owners, self.peer_metrics):
            metric.update_state(y, y_pred[owner], sample_weight=sample_weight)
        return self.get_metrics_result()

    def _check_data(self, x, y):
        """Checks labels and inputs before any step (see `Distiller.fit`)."""
        if self._peer_loss is None:
            raise ValueError(
                "MutualLearner.fit()/evaluate() was called before compile(). Call "
                "learner.compile(optimizer=..., loss=...) first."
            )
        sample = data_checks.Sample(x, y)
        if not sample.has_labels():
            raise ValueError(
                "MutualLearner trains every peer on the labels too, but got no labels (y=None). "
                "Pass labels to fit()/evaluate()."
            )
        data_checks.check_not_empty(sample, "MutualLearner.fit()/evaluate()")
        data_checks.check_token_ids(x if data_checks.is_array_data(x) else sample.inputs, self.peers)
        shape = checks.output_shape(self.peers[0])
        classes = None if shape is None else shape[-1]
        data_checks.check_labels(sample.all_targets, self._peer_loss, classes, owner="the peers")
        data_checks.check_finite_inputs(sample.inputs)
        return sample.x

    def fit(self, x=None, y=None, *args, **kwargs):
        data_checks.check_batch_sizes(kwargs)
        x = self._check_data(x, y)
        validation = data_checks.validation_pair(kwargs)
        if validation is not None:
            self._check_data(*validation)
        with guards.guarded(self) as guard:
            return super().fit(x, y, *args, **guard(kwargs))

    def evaluate(self, x=None, y=None, *args, **kwargs):
        if guards.interrupted():
            return {} if kwargs.get("return_dict") else []  # a fit's validation, after a Ctrl-C
        data_checks.check_batch_sizes(kwargs)
        x = self._check_data(x, y)
        with guards.guarded(self) as guard:
            return super().evaluate(x, y, *args, **guard(kwargs))

    def predict(self, x, *args, peer=None, **kwargs):
        """Every peer's predictions (a list), or one peer's: `peer` is its
        index or name."""
        with guards.guarded(self) as guard:
            outputs = super().predict(x, *args, **guard(kwargs))
        return outputs if peer is None else outputs[self._peer_index(peer)]

    def _peer_index(self, peer):
        names = [model.name for model in self.peers]
        if isinstance(peer, int) and not isinstance(peer, bool) and -len(names) <= peer < len(names):
            return peer
        if isinstance(peer, str) and peer in names:
            return names.index(peer)
        raise ValueError(
            f"Unknown peer {peer!r}. Pass an index below {len(names)} or one "
            f"of the names {names}, or peer=None for all."
        )

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "models": [saving.serialize_model(model) for model in self.peers],
            "temperature": self.temperature,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**saving.deserialize_models(config, ("models",)))

    def get_compile_config(self):
        return saving.compile_config(self, self._compiled_with)

    def compile_from_config(self, config):
        saving.compile_from_config(self, config, models_built=all(model.built for model in self.peers))


def _peer_metrics(metrics, prefix, loss):
    """Fresh metric objects for one model, named `{prefix}_{metric name}`.

    Args:
        metrics: list of metric names, functions or `keras.metrics.Metric`
            objects, as given to `compile`. `"accuracy"` means
            `SparseCategoricalAccuracy` for a sparse loss (integer labels)
            and `CategoricalAccuracy` for a categorical one (one-hot).
        prefix: The model's name.
        loss: The compiled hard-label loss.

    Returns:
        A list of new `keras.metrics.Metric` instances.
    """
    built = []
    for metric in metrics or []:
        if isinstance(metric, str) and metric.lower() in _ACCURACY:
            one_hot = data_checks.loss_kind(loss) == "categorical"
            metric = (keras.metrics.CategoricalAccuracy if one_hot else keras.metrics.SparseCategoricalAccuracy)(
                name="accuracy"
            )
        elif isinstance(metric, (str, dict)):
            metric = keras.metrics.get(metric)
        if isinstance(metric, type) and issubclass(metric, keras.metrics.Metric):
            metric = metric()
        if isinstance(metric, keras.metrics.Metric):
            config = metric.get_config()
            config["name"] = f"{prefix}_{metric.name}"
            built.append(metric.__class__.from_config(config))
        elif callable(metric):
            built.append(
                keras.metrics.MeanMetricWrapper(metric, name=f"{prefix}_{getattr(metric, '__name__', 'metric')}")
            )
        else:
            raise TypeError(
                "Each metric must be a name, a function or a keras.metrics."
                f"Metric. Received: {metric!r} (of type {type(metric).__name__})."
            )
    return built
