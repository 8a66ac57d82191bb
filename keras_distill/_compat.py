"""The private Keras and TensorFlow internals keras_distill relies on.

Every use of a private attribute goes through this module, so that a Keras
or TensorFlow release that drops one breaks here, in one place, and
`tests/test_compat.py` names the release. Nothing else in the package reads
an attribute with a leading underscore of an object it does not own.
"""

import keras

#: (owner, attribute) of every internal used below, checked by the tests.
INTERNALS = (
    ("keras.Model (Functional)", "_run_through_graph"),
    ("keras.Model (Functional)", "_outputs"),
    ("keras.Model (Functional)", "_flatten_layers"),
    ("keras.KerasTensor", "_keras_history"),
    ("tf.data.Dataset", "_as_serialized_graph"),
    ("keras.Variable (JAX)", "_value"),
    ("keras.Model (JAX trainer)", "_jax_state"),
    ("keras_hub.models.CausalLM", "_build_cache"),
    ("keras.src.backend.common.masking", "set_keras_mask"),
    ("keras.Layer (torch)", "_track_variables"),
    ("keras.Layer (torch)", "_post_track_variable"),
    ("keras.Layer (torch)", "_post_untrack_variable"),
    ("keras.Layer (torch)", "_torch_params"),
)


def is_graph_model(model):
    """Whether `model` is a Functional model (a graph of layer calls).

    Keras exposes no public class for it: a Functional model is the one that
    can run its graph of layer outputs.
    """
    return hasattr(model, "_run_through_graph")


def producing_layer(tensor):
    """The layer (or operation) that produced a symbolic `KerasTensor`, or None."""
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None


def symbolic_outputs(model):
    """A Functional model's output tensors as it was built, in a flat list.

    `model.outputs` is the public spelling; `_outputs` keeps the structure
    a model built with a dict or nested outputs was given.
    """
    outputs = getattr(model, "_outputs", None) or getattr(model, "outputs", None)
    return list(keras.tree.flatten(outputs)) if outputs else []


def all_layers(model):
    """Every layer inside `model`, nested ones included, `model` first.
    Keras' `model.layers` lists the direct ones only."""
    return list(model._flatten_layers(include_self=True))


def dataset_operations(dataset):
    """The names of every operation in a `tf.data` pipeline's graph, its
    functions included (`map`, `filter`, ...)."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(dataset._as_serialized_graph().numpy())
    operations = {node.op for node in graph.node}
    for function in graph.library.function:
        operations |= {node.op for node in function.node_def}
    return operations


def is_emptied(variable):
    """Whether the JAX trainer took this variable's value out of it (it
    keeps the values in its step state between a step and the epoch's end)."""
    return getattr(variable, "_value", True) is None


def restore_jax_state(model):
    """Puts the JAX trainer's newest step state back into the variables,
    as Keras does at the end of an epoch, when a step has run."""
    if getattr(model, "_jax_state", None) is not None:
        model.jax_state_sync()


def set_keras_mask(tensor, mask):
    """Attaches a Keras mask to `tensor`, as a masking layer would: every
    Keras metric then leaves out the masked entries. Keras has no public
    spelling of it."""
    from keras.src.backend.common import masking

    masking.set_keras_mask(tensor, mask)


def generates_with_cache(model):
    """Whether `model` is a keras-hub CausalLM that can decode through its
    key/value cache (`_build_cache`, then `call_with_cache`)."""
    return callable(getattr(model, "call_with_cache", None)) and callable(getattr(model, "_build_cache", None))


def build_generation_cache(causal_lm, token_ids):
    """A keras-hub CausalLM's key/value cache over `token_ids`, from one
    forward pass: what its own `generate_step` starts from. keras-hub's
    causal LMs all define `_build_cache(token_ids)`, returning
    `(hidden_states, cache)`, and `call_with_cache` to extend it."""
    return causal_lm._build_cache(token_ids)[1]


class UniqueTorchParameters:
    """Registers every variable of a model that wraps other models as a
    torch parameter of its own, once, on the torch backend.

    Keras' torch layers register their variables in a `ParameterDict` keyed
    by `variable.path`. A path is unique within one model but not across
    two: a keras-hub teacher and student both hold `token_embedding/
    embeddings`, and the later overwrites the earlier in the wrapper's
    dict. keras-hub models also register no torch sub-modules on torch, so
    nothing else reaches the lost variables: `parameters()` misses them,
    Keras' torch `train_step` clears gradients with `zero_grad()` over
    `parameters()`, and their gradients then add up across steps. Keys here
    are the path, made unique with a `#n` suffix in the (deterministic)
    order of `self.variables`, so that every process agrees on them.
    """

    if keras.backend.backend() == "torch":

        def _track_variables(self):
            import torch

            parameters = {}
            for variable in _distinct(self.variables):
                parameters[_unique_key(variable.path, parameters)] = variable.value
            self._torch_params = torch.nn.ParameterDict(parameters)

        def _post_track_variable(self, variable):
            parameters = self.__dict__.get("_modules", {}).get("_torch_params")
            if parameters is not None and not any(value is variable.value for value in parameters.values()):
                parameters[_unique_key(variable.path, parameters)] = variable.value

        def _post_untrack_variable(self, variable):
            parameters = self.__dict__.get("_modules", {}).get("_torch_params")
            if parameters is not None:
                for key in [key for key, value in parameters.items() if value is variable.value]:
                    parameters.pop(key)


def _distinct(variables):
    seen = set()
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            yield variable


def _unique_key(path, taken):
    key, count = path, 1
    while key in taken:
        count += 1
        key = f"{path}#{count}"
    return key
