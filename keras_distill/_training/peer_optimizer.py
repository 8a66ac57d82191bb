"""One optimizer per peer behind the single optimizer a keras.Model has."""

import keras


@keras.saving.register_keras_serializable(package="keras_distill")
class PeerOptimizer(keras.optimizers.Optimizer):
    """Dispatches each variable's gradient to the optimizer of its group.

    Built by `keras_distill.MutualLearner.compile(optimizer=[...])`; the
    learner assigns the groups (each peer's trainable variables) before the
    first step. Each inner optimizer keeps its own slots, learning rate and
    schedule; `iterations` counts the cohort's steps.

    Args:
        optimizers: list of `keras.optimizers.Optimizer`, one per group.
    """

    def __init__(self, optimizers, name="peer_optimizer", **kwargs):
        kwargs.pop("learning_rate", None)
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.optimizers = [keras.optimizers.get(optimizer) for optimizer in optimizers]
        self._group_ids = None

    def set_groups(self, groups):
        """`groups[k]` lists the variables that optimizer k updates."""
        if len(groups) != len(self.optimizers):
            raise ValueError(
                f"Got {len(self.optimizers)} optimizers for {len(groups)} peers. "
                "Pass one optimizer per peer, in the peers' order."
            )
        self._group_ids = [{id(variable) for variable in group} for group in groups]

    def _split(self, variables):
        if self._group_ids is None:
            raise ValueError(
                "PeerOptimizer has no variable groups. It is built by "
                "MutualLearner.compile(optimizer=[...]); use it there."
            )
        return [[index for index, variable in enumerate(variables) if id(variable) in ids] for ids in self._group_ids]

    def build(self, variables):
        super().build(variables)
        for optimizer, indices in zip(self.optimizers, self._split(variables)):
            optimizer.build([variables[i] for i in indices])

    @property
    def variables(self):
        return self._variables[:] + [variable for optimizer in self.optimizers for variable in optimizer.variables]

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if not self.built:
                self.build(trainable_variables)
        grads = list(grads)
        for optimizer, indices in zip(self.optimizers, self._split(trainable_variables)):
            optimizer.apply([grads[i] for i in indices], [trainable_variables[i] for i in indices])
        self._iterations.assign_add(1)

    def get_config(self):
        return {
            "name": self.name,
            "optimizers": [keras.optimizers.serialize(o) for o in self.optimizers],
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizers"] = [keras.optimizers.deserialize(o) for o in config["optimizers"]]
        return cls(**config)
