"""AssistantChain: distillation through teacher assistants (Mirzadeh et al.)."""

import keras

from keras_distill._training.checks import models as checks
from keras_distill._training.guards import guarded
from keras_distill._training.saving import serialize_model
from keras_distill.distillers.stages import StageConfig
from keras_distill.distillers.stages import per_stage
from keras_distill.distillers.stages import per_stage_callbacks


@keras.saving.register_keras_serializable(package="keras_distill")
class AssistantChain:
    """Distills teacher -> assistant_1 -> ... -> student, one stage each.

    Stage i is a `keras_distill.Distiller` whose teacher is model i - 1,
    frozen, with a fresh optimizer and its own `compile`, so no compiled
    state or optimizer slot survives from one stage to the next. With
    `train_teacher=True` the teacher is first trained on the labels.

    Args:
        models: list `[teacher, assistant_1, ..., student]` of at least two
            distinct `keras.Model`s with the same output shape (logits).
        train_teacher: bool. Train the teacher on the labels first.

    Examples:

    ```python
    chain = keras_distill.AssistantChain([teacher, assistant, student])
    chain.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], alpha=0.1, temperature=4.0)
    histories = chain.fit(x, y, epochs=10, validation_data=(x_val, y_val))
    chain.student.save("student.keras")
    ```

    Reference:
        - [Mirzadeh et al., 2020](https://arxiv.org/abs/1902.03393)
    """

    def __init__(self, models, train_teacher=False):
        models = checks.check_model_list(
            models,
            "models",
            minimum=2,
            needs="AssistantChain needs at least a teacher and a student",
            example="[teacher, assistant, student]",
        )
        self.models = models
        self.train_teacher = bool(train_teacher)
        self.distillers = []
        self._stages = StageConfig()

    @property
    def teacher(self):
        return self.models[0]

    @property
    def assistants(self):
        return self.models[1:-1]

    @property
    def student(self):
        return self.models[-1]

    @property
    def stage_count(self):
        return len(self.models) - 1 + int(self.train_teacher)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Keeps the arguments of every stage's `Distiller.compile`.

        Args:
            optimizer: A name, a config dict, an optimizer (its config is
                copied) or a function returning a new optimizer: every
                stage gets a fresh one.
            loss, metrics, **kwargs: As in `keras_distill.Distiller.compile`
                (`alpha`, `temperature`, `distillation_loss`, ...).
        """
        self._stages.set(optimizer, loss, metrics, **kwargs)

    def fit(self, x=None, y=None, *, epochs=1, callbacks=None, **kwargs):
        """Runs every stage in order.

        Args:
            x, y: Training data, as in `keras.Model.fit`.
            epochs: One number for every stage, or one per stage (the
                teacher's training first when `train_teacher=True`).
            callbacks: A list used in every stage, or one list per stage.
            **kwargs: Passed to each stage's `fit`.

        Returns:
            A list with one `History` per stage.
        """
        self._stages.check(type(self).__name__)
        epochs = per_stage(epochs, self.stage_count, "epochs")
        callbacks = per_stage_callbacks(callbacks, self.stage_count)
        histories = []
        if self.train_teacher:
            teacher = self._stages.supervised(self.teacher)
            with guarded(teacher) as guard:
                stage = guard({"epochs": epochs.pop(0), "callbacks": callbacks.pop(0), **kwargs})
                histories.append(teacher.fit(x, y, **stage))
        self.distillers = []
        for teacher, student, stage_epochs, stage_callbacks in zip(
            self.models[:-1], self.models[1:], epochs, callbacks
        ):
            distiller = self._stages.distiller(student, teacher)
            self.distillers.append(distiller)
            histories.append(distiller.fit(x, y, epochs=stage_epochs, callbacks=stage_callbacks, **kwargs))
        return histories

    def get_config(self):
        return {
            "models": [serialize_model(model) for model in self.models],
            "train_teacher": self.train_teacher,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["models"] = [keras.saving.deserialize_keras_object(m) for m in config["models"]]
        return cls(**config)
