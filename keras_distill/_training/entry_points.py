"""The entry points of a distiller (`fit`, `evaluate`, `predict`,
`train_on_batch`, `test_on_batch`): each checks what it can before a step
(`PreflightMixin`), turns a keras-hub student's raw strings into its tokens,
and leaves every model with its weights if a step fails."""

from keras_distill._training import data_checks
from keras_distill._training import hub
from keras_distill._training.ownership import weights_kept_on_failure
from keras_distill._validate import check_int


class EntryPointsMixin:
    """Wraps `keras.Model`'s entry points for a `Distiller`."""

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("fit")
        check_batch_sizes(kwargs)
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
        self._preflight(x, y, kwargs.get("class_weight"), kwargs.get("sample_weight"))
        validation = data_checks.validation_pair(kwargs)
        if validation is not None:
            self._preflight(*validation)
        with weights_kept_on_failure(self):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_compiled("evaluate")
        check_batch_sizes(kwargs)
        x, y = hub.preprocess_arguments(self.student, x, y, kwargs)
        self._preflight(x, y)
        with weights_kept_on_failure(self):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        check_batch_sizes(kwargs)
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


def check_batch_sizes(kwargs):
    """`batch_size` and its kin >= 1 where given: Keras reads 0 as "not
    given" and trains on batches of 32 without a word."""
    for name in ("batch_size", "validation_batch_size", "steps_per_epoch", "validation_steps", "steps"):
        if kwargs.get(name) is not None:
            check_int(kwargs[name], name, example=32, at_least=1)
