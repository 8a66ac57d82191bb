"""Per-model copies of compile() metrics, for trainers of several models."""

import keras

_ACCURACY = ("accuracy", "acc")


def peer_metrics(metrics, prefix):
    """Fresh metric objects for one model, named `{prefix}_{metric name}`.

    Args:
        metrics: list of metric names, functions or `keras.metrics.Metric`
            objects, as given to `compile`. `"accuracy"` means
            `SparseCategoricalAccuracy` (integer labels); pass
            `keras.metrics.CategoricalAccuracy()` for one-hot labels.
        prefix: The model's name.

    Returns:
        A list of new `keras.metrics.Metric` instances.
    """
    built = []
    for metric in metrics or []:
        if isinstance(metric, str) and metric.lower() in _ACCURACY:
            metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
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
                keras.metrics.MeanMetricWrapper(
                    metric, name=f"{prefix}_{getattr(metric, '__name__', 'metric')}"
                )
            )
        else:
            raise TypeError(
                "Each metric must be a name, a function or a keras.metrics."
                f"Metric. Received: {metric!r} (of type {type(metric).__name__})."
            )
    return built
