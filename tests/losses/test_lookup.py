import keras
import pytest

import keras_distill as kd


@pytest.mark.parametrize(
    "name, cls",
    [
        ("kl", kd.losses.SoftTargetKLDivergence),
        ("KL_Divergence", kd.losses.SoftTargetKLDivergence),
        ("cross_entropy", kd.losses.SoftTargetCrossEntropy),
        ("mse", kd.losses.LogitMatching),
        ("logit_matching", kd.losses.LogitMatching),
    ],
)
def test_names(name, cls):
    assert type(kd.losses.get(name)) is cls


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"distillation_loss='kullback'.*'cross_entropy'"):
        kd.losses.get("kullback")


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
