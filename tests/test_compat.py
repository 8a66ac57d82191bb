"""The private Keras and TensorFlow internals keras_distill relies on are
still there: if one disappears, this test names it and the version."""

import importlib.util

import keras
import numpy as np
import pytest

from keras_distill import _compat
from tests import conftest


def _missing(owner, attribute, version):
    return f"{owner} has no `{attribute}` in {version}: update keras_distill/_compat.py"


def test_every_internal_exists_in_the_installed_versions():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(hidden))
    objects = {"keras.Model (Functional)": model, "keras.KerasTensor": model.outputs[0]}
    tf = pytest.importorskip("tensorflow")
    objects["tf.data.Dataset"] = tf.data.Dataset.from_tensor_slices(np.zeros((4, 3), "float32")).batch(2)
    versions = f"Keras {keras.__version__}, TensorFlow {tf.__version__}"
    if keras.backend.backend() == "jax":
        # The JAX trainer's own state: only its variables and models have it.
        variable = keras.Variable(np.zeros(2, "float32"))
        objects["keras.Variable (JAX)"] = variable
        objects["keras.Model (JAX trainer)"] = model
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32"), verbose=0)
    from keras.src.backend.common import masking

    objects["keras.src.backend.common.masking"] = masking
    # A masked entry leaves every metric, weighted or not.
    logits = keras.ops.convert_to_tensor(np.eye(3, dtype="float32"))
    _compat.set_keras_mask(logits, keras.ops.convert_to_tensor([True, True, False]))
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    accuracy.update_state(np.array([0, 0, 2]), logits)
    assert float(accuracy.result()) == 0.5
    if keras.backend.backend() == "torch":
        assert len(model.torch_params) == len(model.variables)  # built on first use
        objects["keras.Layer (torch)"] = model
    if importlib.util.find_spec("keras_hub") is not None:
        keras.utils.set_random_seed(0)
        causal_lm = conftest.causal_lm(1, 8, "lm")
        objects["keras_hub.models.CausalLM"] = causal_lm
        token_ids = np.ones((2, conftest.LENGTH), "int32")
        cache = _compat.build_generation_cache(causal_lm, token_ids)
        # (batch, layers, key and value, length, heads, head size)
        assert tuple(cache.shape[:4]) == (2, 1, 2, conftest.LENGTH)
    for owner, attribute in _compat.INTERNALS:
        if owner in objects:
            assert hasattr(objects[owner], attribute), _missing(owner, attribute, versions)

    # And each one still means what the package reads from it.
    assert _compat.is_graph_model(model)
    assert not _compat.is_graph_model(keras.layers.Dense(2))
    assert _compat.producing_layer(model.outputs[0]).name == "probabilities"
    assert len(_compat.symbolic_outputs(model)) == 1
    assert [layer.name for layer in _compat.all_layers(model)][-2:] == ["hidden", "probabilities"]
    shuffled = objects["tf.data.Dataset"].shuffle(4)
    assert any("Shuffle" in op for op in _compat.dataset_operations(shuffled))
    assert not any("Shuffle" in op for op in _compat.dataset_operations(objects["tf.data.Dataset"]))
