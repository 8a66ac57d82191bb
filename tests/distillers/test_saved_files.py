"""`.keras` files saved by the library before its training core was rebuilt
(main at ffcce13, on each backend; see tests/data/make_saved_distillers.py)
load on every backend, predict what they predicted when saved, and train on
without a new `compile`."""

import glob
import os

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import token_batch

DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "saved_distillers")
FILES = sorted(glob.glob(os.path.join(DIRECTORY, "*.keras")))


def _expected():
    expected = {}
    for path in glob.glob(os.path.join(DIRECTORY, "predictions_*.npz")):
        with np.load(path) as arrays:
            expected.update({key: arrays[key] for key in arrays.files})
    return expected


def _data(name):
    if name.startswith("causal_lm"):
        tokens, labels, mask = token_batch(16)
        return tokens, labels, mask
    (x, y), _ = kd.datasets.load_digits(normalize=True)
    x, y = x.reshape(len(x), -1)[:256].astype("float32"), y[:256]
    if name.startswith("distiller_class_subset"):
        return x, None, None
    if name.startswith("distiller_dict_outputs"):
        return x, {"digit": y}, None
    return x, y, None


def test_every_kind_was_saved_on_every_backend():
    names = {os.path.basename(path).rsplit("_", 1)[0] for path in FILES}
    assert len(names) == 7 and len(FILES) == 21
    assert set(_expected()) == {os.path.basename(path)[: -len(".keras")] for path in FILES}


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(path) for path in FILES])
def test_a_file_saved_before_the_redesign_predicts_the_same_and_trains_on(path):
    key = os.path.basename(path)[: -len(".keras")]
    x, y, sample_weight = _data(key)
    distiller = keras.saving.load_model(path)
    assert distiller.compiled
    sample = keras.tree.map_structure(lambda array: array[:8], x)
    output = distiller.predict(sample, verbose=0)
    if isinstance(output, list):
        output = np.stack(output)
    elif isinstance(output, dict):
        output = np.concatenate([output[name] for name in sorted(output)], axis=-1)
    np.testing.assert_allclose(output, _expected()[key], rtol=1e-4, atol=1e-5)

    before = [np.array(variable) for variable in distiller.trainable_variables]
    frozen = [np.array(variable) for model in getattr(distiller, "teachers", []) for variable in model.variables]
    history = distiller.fit(x, y, sample_weight=sample_weight, epochs=1, batch_size=64, verbose=0)
    assert all(np.isfinite(values).all() for values in history.history.values())
    after = [np.array(variable) for variable in distiller.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    teachers_after = [
        np.array(variable) for model in getattr(distiller, "teachers", []) for variable in model.variables
    ]
    assert all(np.array_equal(a, b) for a, b in zip(frozen, teachers_after))
