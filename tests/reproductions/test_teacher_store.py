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


def test_flipped_bytes_are_caught_by_the_checksum(digits, tmp_path):
    (x, y), _ = digits
    calls = []

    def store():
        return teacher_store.trained(
            "teacher", lambda: _compiled("t"), _fit_counter(x, y, calls), key={"seed": 0}, directory=str(tmp_path)
        )

    trained, _ = store()
    (path,) = [tmp_path / f for f in os.listdir(tmp_path) if f.endswith(".weights.h5")]
    data = bytearray(path.read_bytes())
    for offset in range(len(data) - 400, len(data) - 200):  # inside the stored kernels, not the file's structure
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="checksum does not match"):
        model, record = store()
    assert calls == [1, 1] and not record["loaded"]
    again, record = store()
    assert record["loaded"] and all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))


def test_names_stay_inside_the_store_and_arrays_key_by_content(tmp_path):
    with pytest.raises(ValueError, match=r"Received: name='\.\./x'"):
        teacher_store.trained("../x", lambda: _compiled("t"), lambda model: None, key={}, directory=str(tmp_path))
    assert not os.listdir(tmp_path)
    model = _compiled("t")
    a, b = np.zeros(5000), np.zeros(5000)
    b[2500] = 1.0  # str() of both arrays is the same: "[0. 0. 0. ... 0. 0. 0.]"
    assert str(a) == str(b)
    assert teacher_store.key_of(model, {"x": a})[1] != teacher_store.key_of(model, {"x": b})[1]
    assert teacher_store.key_of(model, {"x": a})[1] == teacher_store.key_of(model, {"x": a.copy()})[1]
