"""BornAgain: self-distillation over generations (Furlanello et al., 2018)."""

import inspect

import keras

from keras_distill._training.checks import models as checks
from keras_distill._training.guards import guarded
from keras_distill._validate import check_int
from keras_distill.distillers.stages import StageConfig
from keras_distill.distillers.stages import per_stage
from keras_distill.distillers.stages import per_stage_callbacks


class BornAgain:
    """Born-Again Networks: each generation is taught by the previous one.

    Generation 0 is trained on the labels; generation k > 0 is a fresh
    model of the same architecture distilled from generation k - 1 (frozen)
    with a `keras_distill.Distiller`. Every generation is kept (`models`),
    with the distiller that taught it (`distillers[k - 1]` taught
    generation k); `ensemble()` averages their predicted probabilities, as
    the paper's BAN ensembles do.

    Args:
        build_model: A function returning a new, untrained `keras.Model`
            (logits out) each call; it may take the generation index.
        generations: int >= 2, the number of generations including
            generation 0.

    Examples:

    ```python
    born_again = keras_distill.BornAgain(lambda: make_cnn(), generations=3)
    born_again.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"], alpha=0.5, temperature=2.0)
    born_again.fit(x, y, epochs=5)
    born_again.models[-1].save("generation_2.keras")
    born_again.ensemble().evaluate(x_test, y_test)
    ```

    Reference:
        - [Furlanello et al., 2018](https://arxiv.org/abs/1805.04770)
    """

    def __init__(self, build_model, generations=3):
        if isinstance(build_model, keras.Model):
            raise TypeError(
                f"`build_model` must be a function returning a new model, but received the model "
                f"{build_model.name!r} itself: every generation needs fresh weights. Pass e.g. "
                "build_model=lambda: keras.models.clone_model(model)."
            )
        if not callable(build_model):
            raise TypeError(
                "`build_model` must be a function returning a new keras.Model. "
                f"Received: {build_model!r}. Use e.g. lambda: make_model()."
            )
        self.build_model = build_model
        self.generations = check_int(generations, "generations", example=3, at_least=2)
        self.models = []
        self.distillers = []
        self._stages = StageConfig()

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """As `keras_distill.AssistantChain.compile`: every generation gets
        a fresh optimizer and its own compile."""
        self._stages.set(optimizer, loss, metrics, **kwargs)

    def _new_model(self, generation):
        try:
            takes_generation = bool(inspect.signature(self.build_model).parameters)
        except (TypeError, ValueError):
            takes_generation = False
        model = self.build_model(generation) if takes_generation else self.build_model()
        checks.check_keras_model(model, "build_model()")
        if any(model is other for other in self.models):
            raise ValueError(
                "`build_model` returned a model it had returned before. It must build a new model at each call."
            )
        return model

    def fit(self, x=None, y=None, *, epochs=1, callbacks=None, **kwargs):
        """Trains every generation in turn; returns one `History` each.

        `epochs` and `callbacks` are one value for every generation or one
        per generation.
        """
        self._stages.check(type(self).__name__)
        epochs = per_stage(epochs, self.generations, "epochs")
        callbacks = per_stage_callbacks(callbacks, self.generations)
        self.models, self.distillers = [self._new_model(0)], []
        first = self._stages.supervised(self.models[0])
        with guarded(first) as guard:
            histories = [first.fit(x, y, **guard({"epochs": epochs[0], "callbacks": callbacks[0], **kwargs}))]
        for generation in range(1, self.generations):
            model = self._new_model(generation)
            distiller = self._stages.distiller(model, self.models[-1])
            self.models.append(model)
            self.distillers.append(distiller)
            histories.append(distiller.fit(x, y, epochs=epochs[generation], callbacks=callbacks[generation], **kwargs))
        return histories

    def ensemble(self, generations=None, metrics=("accuracy",)):
        """A compiled `keras.Model` returning the mean of the generations'
        softmax probabilities.

        Args:
            generations: Indices of the generations to average. Defaults
                to all.
            metrics: Metrics of the ensemble model.
        """
        if not self.models:
            raise ValueError("BornAgain.ensemble() was called before fit().")
        chosen = [self.models[index] for index in _generation_indices(generations, len(self.models))]
        names = [model.name for model in chosen]
        if len(set(names)) < len(names):
            raise ValueError(
                f"The generations share names ({names}), and a Keras model needs distinct layer names to "
                "average them. Have `build_model` name each one, e.g. "
                "build_model=lambda generation: make_model(name=f'generation_{generation}')."
            )
        inputs = keras.Input(tuple(chosen[0].inputs[0].shape[1:]), dtype=chosen[0].inputs[0].dtype)
        outputs = keras.layers.Average()([keras.layers.Softmax()(model(inputs, training=False)) for model in chosen])
        ensemble = keras.Model(inputs, outputs, name="born_again_ensemble")
        ensemble.compile(loss="sparse_categorical_crossentropy", metrics=list(metrics))
        return ensemble


def _generation_indices(generations, count):
    """`generations` checked: None for all of them, else a non-empty list of
    indices of trained generations."""
    if generations is None:
        return list(range(count))
    if isinstance(generations, int) or not isinstance(generations, (list, tuple, range)) or not list(generations):
        raise ValueError(
            f"`generations` lists the generations to average: None for all {count}, or a non-empty list of "
            f"indices below {count}. Received: generations={generations!r}. Use e.g. generations=[1, 2]."
        )
    for index in generations:
        check_int(index, "generations[...]", example=count - 1, at_least=-count, at_most=count - 1)
    return list(generations)
