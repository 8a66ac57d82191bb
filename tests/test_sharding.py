"""kd.sharding.teacher_layout_map with the user's mesh axis names (the
multi-device run itself: tests/distillers/test_sharded_teacher.py)."""

import keras
import pytest

import keras_distill as kd
from tests.conftest import BACKEND


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution lays out variables on JAX only")
def test_the_layout_map_uses_the_meshs_own_axis_names():
    keras_hub = pytest.importorskip("keras_hub")
    devices = keras.distribution.list_devices()[:1]
    mesh = keras.distribution.DeviceMesh(shape=(1, 1), axis_names=("data", "tp"), devices=devices)
    layout_map = kd.sharding.teacher_layout_map(keras_hub.models.LlamaBackbone, mesh, model_dim="tp", batch_dim="data")
    # The output embedding is the transpose of the input embedding's layout.
    assert layout_map["token_embedding/embeddings"].axes == ("tp", "data")
    assert layout_map["token_embedding/reverse_embeddings"].axes == ("data", "tp")
