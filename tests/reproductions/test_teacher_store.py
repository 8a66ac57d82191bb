import os

import keras
import numpy as np
import pytest

from reproductions import teacher_store
from tests.conftest import make_mlp


def _fit_counter(x, y, calls):
    def fit(model):
        calls.append(1)
        model.fit(x, y, epochs=1, verbose=0)

    return fit


def _compiled(name, units=8):
    model = make_mlp(units, name=name)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_a_model_is_trained_once_then_loaded(digits, tmp_path):
    (x, y), _ = digits
    calls = []
    first, record = teacher_store.trained(
        "teacher",
        lambda: _compiled("t"),
        _fit_counter(x, y, calls),
        key={"epochs": 1, "seed": 0},
        directory=str(tmp_path),
    )
    assert calls == [1] and not record["loaded"] and record["seconds"] > 0
    assert record["key"]["backend"] == keras.backend.backend()
    # Layer names are numbered per process: they do not change the key.
    again, record = teacher_store.trained(
        "teacher",
        lambda: _compiled("another_name"),
        _fit_counter(x, y, calls),
        key={"epochs": 1, "seed": 0},
        directory=str(tmp_path),
    )
    assert calls == [1] and record["loaded"]
    np.testing.assert_array_equal(again.predict(x[:8], verbose=0), first.predict(x[:8], verbose=0))
    # Another seed, or another architecture, is another model.
    teacher_store.trained(
        "teacher",
        lambda: _compiled("t"),
        _fit_counter(x, y, calls),
        key={"epochs": 1, "seed": 1},
        directory=str(tmp_path),
    )
    teacher_store.trained(
        "teacher",
        lambda: _compiled("t", units=9),
        _fit_counter(x, y, calls),
        key={"epochs": 1, "seed": 0},
        directory=str(tmp_path),
    )
    assert calls == [1, 1, 1]
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".weights.h5")]) == 3


def test_a_damaged_file_is_trained_again(digits, tmp_path, monkeypatch):
    (x, y), _ = digits
    calls = []
    monkeypatch.setenv(teacher_store.ENVIRONMENT, str(tmp_path))
    teacher_store.trained("teacher", lambda: _compiled("t"), _fit_counter(x, y, calls), key={"seed": 0})
    (path,) = [tmp_path / f for f in os.listdir(tmp_path) if f.endswith(".weights.h5")]
    path.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="training it again"):
        _, record = teacher_store.trained("teacher", lambda: _compiled("t"), _fit_counter(x, y, calls), key={"seed": 0})
    assert calls == [1, 1] and not record["loaded"]
    assert teacher_store.default_directory() == str(tmp_path)
