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
