import os

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp

pytest.importorskip("keras_tuner")


def trained_teacher(x, y):
    teacher = make_mlp(32, name="teacher")
    teacher.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=3, verbose=0)
    return teacher


def test_the_label_only_student_is_a_trial_and_never_beaten_on_validation(digits, tmp_path):
    (x, y), _ = digits
    x_val, y_val, x, y = x[:300], y[:300], x[300:], y[300:]
    teacher = trained_teacher(x, y)
    before = [w.copy() for w in teacher.get_weights()]
    result = kd.tune(
        lambda: make_mlp(8, name="student"),
        teacher,
        x,
        y,
        validation_data=(x_val, y_val),
        max_trials=3,
        epochs=2,
        directory=str(tmp_path),
        verbose=0,
    )
    assert len(result.trials) == 3 and [row["trial"] for row in result.trials].count(kd.tuning.BASELINE) == 1
    baseline = next(row for row in result.trials if row["trial"] == kd.tuning.BASELINE)
    assert result.best["score"] >= baseline["score"] and result.best is result.trials[0]
    assert all(row["alpha"] < 1.0 for row in result.trials if row is not baseline)
    # The returned student is the user's architecture, at its best epoch's weights.
    assert [layer.name for layer in result.student.layers] == ["student_hidden", "student_logits"]
    accuracy = np.mean(np.argmax(result.student.predict(x_val, verbose=0), -1) == y_val)
    np.testing.assert_allclose(accuracy, result.best["score"], atol=1e-6)
    assert result.table.count("\n") == 4 and "labels only" in result.table
    label_only = result.label_only_student()
    label_only_accuracy = np.mean(np.argmax(label_only.predict(x_val, verbose=0), -1) == y_val)
    np.testing.assert_allclose(label_only_accuracy, baseline["score"], atol=1e-6)
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)

    # Interrupted or extended: the search resumes, the label-only trial is not retrained.
    record = os.path.join(tmp_path, "tune", "labels_only.json")
    stamp = os.path.getmtime(record)
    more = kd.tune(
        lambda: make_mlp(8, name="student"),
        teacher,
        x,
        y,
        validation_data=(x_val, y_val),
        max_trials=4,
        epochs=2,
        directory=str(tmp_path),
        verbose=0,
    )
    assert len(more.trials) == 4 and os.path.getmtime(record) == stamp
    assert {row["trial"] for row in result.trials} < {row["trial"] for row in more.trials}


def test_arguments_are_checked_before_any_training(digits):
    (x, y), _ = digits
    teacher = make_mlp(16, name="teacher")
    with pytest.raises(ValueError, match=r"validation_data.*\(x_val, y_val\)"):
        kd.tune(lambda: make_mlp(8, name="s"), teacher, x, y, validation_data=None)
    with pytest.raises(ValueError, match="max_trials"):
        kd.tune(lambda: make_mlp(8, name="s"), teacher, x, y, validation_data=(x, y), max_trials=1)
    with pytest.raises(ValueError, match="search='grid'"):
        kd.tune(lambda: make_mlp(8, name="s"), teacher, x, y, validation_data=(x, y), search="grid")
    with pytest.raises(TypeError, match="student_builder\\(width\\)"):
        kd.tune(lambda: make_mlp(8, name="s"), teacher, x, y, validation_data=(x, y), widths=[4, 8])


def test_a_search_on_other_data_is_not_resumed_silently(digits, tmp_path):
    (x, y), _ = digits
    x_val, y_val, x, y = x[:200], y[:200], x[200:800], y[200:800]
    teacher = trained_teacher(x, y)

    def search(x, y, **kwargs):
        return kd.tune(
            lambda: make_mlp(4, name="student"),
            teacher,
            x,
            y,
            validation_data=(x_val, y_val),
            max_trials=2,
            epochs=1,
            directory=str(tmp_path),
            verbose=0,
            **kwargs,
        )

    search(x, y)
    with pytest.raises(ValueError, match=r"holds a search run with other training data.*overwrite=True"):
        search(x[:300], y[:300])
    assert len(search(x[:300], y[:300], overwrite=True).trials) == 2


def test_a_builder_that_returns_the_users_model_is_refused(digits, tmp_path):
    (x, y), _ = digits
    teacher, mine = make_mlp(16, name="teacher"), make_mlp(4, name="mine")
    before = [w.copy() for w in mine.get_weights()]
    with pytest.raises(ValueError, match=r"returned the same model 'mine' twice.*clone_model"):
        kd.tune(lambda: mine, teacher, x[200:], y[200:], validation_data=(x[:200], y[:200]), directory=str(tmp_path))
    assert all(np.array_equal(a, b) for a, b in zip(before, mine.get_weights()))


def test_the_search_space_and_project_name_are_the_users(digits, tmp_path):
    # Every option of the space at a value other than its default: each trial
    # draws from what was passed, and the state lives under project_name.
    (x, y), _ = digits
    x_val, y_val, x, y = x[:200], y[:200], x[200:800], y[200:800]
    teacher = trained_teacher(x, y)
    result = kd.tune(
        lambda: make_mlp(8, name="student"),
        teacher,
        x,
        y,
        validation_data=(x_val, y_val),
        max_trials=3,
        epochs=1,
        alphas=(0.25,),
        temperatures=(3.0,),
        distillation_losses=("reverse_kl",),
        standardize=(True,),
        directory=str(tmp_path),
        project_name="mine",
        verbose=0,
    )
    searched = [row for row in result.trials if row["trial"] != kd.tuning.BASELINE]
    assert searched
    for row in searched:
        assert (row["alpha"], row["temperature"], row["distillation_loss"], row["standardize_logits"]) == (
            0.25,
            3.0,
            "reverse_kl",
            True,
        )
    assert os.path.isdir(tmp_path / "mine") and not os.path.exists(tmp_path / "tune")
