"""Callbacks: `alpha` and `temperature` schedules, and the on-policy
evaluation of a language-model student (`OnPolicyEvaluation`)."""

import keras

from keras_distill._validate import check_int
from keras_distill._validate import check_number
from keras_distill.on_policy_evaluation import OnPolicyEvaluation  # noqa: F401  (public here)


class _HyperparameterScheduler(keras.callbacks.Callback):
    """Sets `model.<attribute>` to `schedule(epoch, current)` each epoch.

    The distiller keeps the value in a variable, so the compiled train step
    reads the new value without being retraced.
    """

    attribute = None

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                f"`schedule` must be a function of the epoch. Received: "
                f"schedule={schedule!r}. Use e.g. "
                f"{type(self).__name__}(lambda epoch: 4.0 if epoch < 5 else 2.0)."
            )
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model, self.attribute):
            raise ValueError(
                f"{type(self).__name__} needs a model with a "
                f"`{self.attribute}`, such as keras_distill.Distiller. "
                f"Received a {type(self.model).__name__}."
            )
        current = getattr(self.model, self.attribute)
        try:
            value = self.schedule(epoch, current)
        except TypeError:
            value = self.schedule(epoch)
        # The distiller's setter validates the value (range, type).
        setattr(self.model, self.attribute, float(value))
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: {type(self).__name__} setting {self.attribute} to {float(value)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.attribute] = getattr(self.model, self.attribute)

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_distill")
class TemperatureScheduler(_HyperparameterScheduler):
    """Changes a distiller's temperature at the start of each epoch.

    Like `keras.callbacks.LearningRateScheduler`: `schedule(epoch)` or
    `schedule(epoch, temperature)` returns the new temperature (> 0). The
    value used is logged as `temperature`.

    Args:
        schedule: a function of the epoch index (from 0), optionally also of
            the current temperature, returning a float > 0.
        verbose: int. 0: quiet, 1: print each update.

    Examples:

    ```python
    scheduler = keras_distill.callbacks.TemperatureScheduler(
        lambda epoch: max(1.0, 8.0 * 0.5**epoch)
    )
    distiller.fit(x, y, epochs=5, callbacks=[scheduler])
    ```
    """

    attribute = "temperature"


@keras.saving.register_keras_serializable(package="keras_distill")
class AlphaScheduler(_HyperparameterScheduler):
    """Changes a distiller's `alpha` at the start of each epoch.

    `schedule(epoch)` or `schedule(epoch, alpha)` returns the new weight of
    the hard-label loss, in [0, 1]. The value used is logged as `alpha`.

    Args:
        schedule: a function of the epoch index (from 0), optionally also of
            the current alpha, returning a float in [0, 1].
        verbose: int. 0: quiet, 1: print each update.

    Examples:

    ```python
    # Lean on the teacher first, then on the labels.
    scheduler = keras_distill.callbacks.AlphaScheduler(
        lambda epoch: min(0.9, 0.1 + 0.2 * epoch)
    )
    distiller.fit(x, y, epochs=5, callbacks=[scheduler])
    ```
    """

    attribute = "alpha"


def linear_warmup(warmup_epochs, *, end, start=1.0):
    """A schedule for `AlphaScheduler` that brings the teacher in linearly.

    `alpha` goes from `start` (1.0: labels only) towards `end` over the
    first `warmup_epochs` epochs, `start - (start - end) * min(1, (epoch + 1)
    / warmup_epochs)`, then stays at `end`: the distillation term's weight
    `1 - alpha` ramps up as DKD's does in its authors' code (over 20 of 240
    epochs there).

    Args:
        warmup_epochs: int >= 1.
        end: alpha after the warm-up, in [0, 1].
        start: alpha before the first epoch. Defaults to 1.0.

    Returns:
        A function of the epoch index, for `AlphaScheduler`.

    Examples:

    ```python
    warmup = keras_distill.callbacks.AlphaScheduler(
        keras_distill.callbacks.linear_warmup(5, end=0.5)
    )
    distiller.fit(x, y, epochs=20, callbacks=[warmup])
    ```
    """
    warmup_epochs = check_int(warmup_epochs, "warmup_epochs", example=5, at_least=1)
    end = check_number(end, "end", example=0.5, at_least=0.0, at_most=1.0)
    start = check_number(start, "start", example=1.0, at_least=0.0, at_most=1.0)

    def schedule(epoch):
        return start - (start - end) * min(1.0, (epoch + 1) / warmup_epochs)

    return schedule
