import keras
import numpy as np
import pytest

import keras_distill as kd
from keras_distill.losses import lookup


@pytest.mark.parametrize(
    "name, cls",
    [
        ("kl", kd.losses.SoftTargetKLDivergence),
        ("KL_Divergence", kd.losses.SoftTargetKLDivergence),
        ("cross_entropy", kd.losses.SoftTargetCrossEntropy),
        ("logit_matching", kd.losses.LogitMatching),
    ],
)
def test_names(name, cls):
    assert type(kd.losses.get(name)) is cls


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"distillation_loss='kullback'.*'cross_entropy'"):
        kd.losses.get("kullback")


def test_mse_names_one_thing_only():
    # "mse" is keras.losses.MeanSquaredError as a feature loss; as a
    # distillation loss it would mean centred logit matching, so it is refused.
    assert type(kd.losses.get_feature_loss("mse")) is keras.losses.MeanSquaredError
    with pytest.raises(ValueError, match="distillation_loss='mse'.*use distillation_loss='logit_matching'"):
        kd.losses.get("mse")


def test_objects_pass_through_and_functions_are_wrapped():
    loss = keras.losses.KLDivergence()
    assert kd.losses.get(loss) is loss
    wrapped = kd.losses.get(keras.losses.kl_divergence)
    assert isinstance(wrapped, kd.losses.FunctionLoss)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(wrapped))
    assert restored.fn is keras.losses.kl_divergence


def test_wrong_type():
    with pytest.raises(TypeError, match="distillation_loss=3"):
        kd.losses.get(3)


def test_feature_loss_names_and_errors():
    assert isinstance(kd.losses.get_feature_loss("at"), kd.losses.AttentionTransfer)
    assert isinstance(kd.losses.get_feature_loss("hint"), kd.losses.HintLoss)
    assert set(lookup.FEATURE_ALIASES) >= {"fsp", "rkd_distance", "rkd_angle", "mse"}
    with pytest.raises(ValueError, match="Unknown `feature_loss`.*'nope'"):
        kd.losses.get_feature_loss("nope")
    with pytest.raises(ValueError, match="p=0"):
        kd.losses.AttentionTransfer(p=0)
    with pytest.raises(ValueError, match="delta=-1"):
        kd.losses.RKDAngle(delta=-1)


def test_a_function_named_with_an_underscore_gives_a_valid_scope_name():
    def _private_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    wrapped = kd.losses.get(_private_loss)
    assert wrapped.name == "private_loss"
    value = wrapped(np.array([[1.0, 2.0]], "float32"), np.array([[1.0, 0.0]], "float32"))
    assert float(keras.ops.convert_to_numpy(value)) == 2.0


def test_function_loss_names_are_valid_scopes_and_its_reduction_is_kept():
    """`<lambda>` becomes `lambda`; every other character outside
    `[A-Za-z0-9_.-]` becomes `_`; a name with nothing left, or a callable
    without `__name__`, is `function_loss`."""

    def difference(y_true, y_pred):
        return keras.ops.mean(y_true - y_pred, axis=-1)

    class Callable:
        def __call__(self, y_true, y_pred):
            return difference(y_true, y_pred)

    assert kd.losses.get(lambda y_true, y_pred: difference(y_true, y_pred)).name == "lambda"
    difference.__name__ = "Café Loss-2.x"
    assert kd.losses.get(difference).name == "Caf__Loss-2.x"
    difference.__name__ = "XLossX"
    assert kd.losses.get(difference).name == "XLossX"
    difference.__name__ = "<>"
    assert kd.losses.get(difference).name == "function_loss"
    assert kd.losses.get(Callable()).name == "function_loss"
    summed = kd.losses.FunctionLoss(difference, reduction="sum")
    assert summed.reduction == "sum" and summed.get_config()["reduction"] == "sum"
    assert kd.losses.FunctionLoss(difference).reduction == "sum_over_batch_size"


def test_configs_load_by_either_lookup():
    loss = kd.losses.SoftTargetKLDivergence(temperature=3.0)
    restored = kd.losses.get(keras.saving.serialize_keras_object(loss))
    assert type(restored) is kd.losses.SoftTargetKLDivergence and restored.temperature == 3.0
    feature = kd.losses.get_feature_loss(keras.saving.serialize_keras_object(kd.losses.RKDAngle(delta=0.5)))
    assert type(feature) is kd.losses.RKDAngle and feature.delta == 0.5
