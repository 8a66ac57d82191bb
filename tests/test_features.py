import keras
import numpy as np
import pytest

import keras_distill as kd
from keras_distill import features
from tests.conftest import make_cnn
from tests.conftest import make_mlp


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def nested_model():
    backbone = make_cnn("backbone", (4, 6))
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(2.0, name="scale")(inputs)
    x = backbone(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x), name="outer")


def test_functional_taps_and_final_output():
    model = make_cnn("m")
    extractor = features.build_feature_extractor(model, ["m_conv1", "m_pool"])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    outputs = extractor(x)
    assert set(outputs) == {"m_conv1", "m_pool", features.FINAL_OUTPUT}
    assert tuple(outputs["m_conv1"].shape) == (2, 8, 8, 8)
    np.testing.assert_allclose(_numpy(outputs[features.FINAL_OUTPUT]), _numpy(model(x)), rtol=1e-6)
    reference = keras.Model(model.input, model.get_layer("m_conv1").output)
    np.testing.assert_allclose(_numpy(outputs["m_conv1"]), _numpy(reference(x)), rtol=1e-6)


def test_sequential_model_and_only_needed_layers():
    model = make_mlp(16, name="seq")
    extractor = features.build_feature_extractor(model, "seq_hidden", include_output=False)
    assert set(extractor.output) == {"seq_hidden"}
    # The layers after the tap are not part of the extractor.
    assert [w.path for w in extractor.weights] == ["seq/seq_hidden/kernel", "seq/seq_hidden/bias"]


def test_nested_model_path_shares_weights_and_leaves_model_alone():
    model = nested_model()
    layer_count = len(model.layers)
    before = [w.copy() for w in model.get_weights()]
    extractor = features.build_feature_extractor(model, ["backbone/backbone_conv2", "scale"])
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype("float32")
    outputs = extractor(x)
    np.testing.assert_allclose(_numpy(outputs[features.FINAL_OUTPUT]), _numpy(model(x)), rtol=1e-5)
    backbone = model.get_layer("backbone")
    inner = keras.Model(backbone.input, backbone.get_layer("backbone_conv2").output)
    np.testing.assert_allclose(_numpy(outputs["backbone/backbone_conv2"]), _numpy(inner(2.0 * x)), rtol=1e-5)
    # Same variables, not copies; the model is unchanged.
    assert {id(v) for v in extractor.weights} == {id(v) for v in model.weights}
    assert len(model.layers) == layer_count
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unknown_layer_lists_the_names():
    with pytest.raises(ValueError, match=r"No layer named 'nope'.*m_conv1, m_conv2"):
        features.build_feature_extractor(make_cnn("m"), ["nope"])
    with pytest.raises(ValueError, match=r"No layer named 'zz' in 'backbone'.*backbone_conv1"):
        features.build_feature_extractor(nested_model(), ["backbone/zz"])
    with pytest.raises(ValueError, match="not a nested model"):
        features.build_feature_extractor(nested_model(), ["head/kernel"])


def test_subclassed_and_unbuilt_models_are_refused():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.dense = keras.layers.Dense(2, name="dense")

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed Subclassed.*functional API"):
        features.build_feature_extractor(model, ["dense"])
    with pytest.raises(ValueError, match="no known input.*keras.Input"):
        features.build_feature_extractor(keras.Sequential([keras.layers.Dense(2, name="d")]), ["d"])


def test_bad_names():
    with pytest.raises(ValueError, match="No layer names"):
        features.build_feature_extractor(make_cnn("m"), [])
    with pytest.raises(TypeError, match="must be strings"):
        features.build_feature_extractor(make_cnn("m"), [3])


def test_map_layers():
    teacher = [f"t{i}" for i in range(12)]
    pairs = kd.features.map_layers(teacher, [f"s{i}" for i in range(6)])
    assert pairs == [(f"t{2 * i + 1}", f"s{i}") for i in range(6)]
    assert kd.features.map_layers(["a", "b", "c"], ["x", "y"]) == [("a", "x"), ("c", "y")]
    with pytest.raises(ValueError, match="1 to len"):
        kd.features.map_layers(["a"], ["x", "y"])
