"""1. A Ctrl-C never costs a model: a real SIGINT at any moment, or a
`KeyboardInterrupt` raised by a callback, leaves every model the library
trained or ran usable, with finite weights, the teacher's bit-identical, the
student at the weights of its last completed step, on every backend.

On JAX, Keras' trainer takes the variables' values into its step state for
the epoch and empties the variables, and each step consumes (donates) the
arrays of its state: a plain `fit` interrupted after a step returned and
before Keras kept its new state deleted every model's arrays ("Buffer has
been deleted or donated"). The library's entry points defer a Ctrl-C to the
end of the step under way (`keras_distill._training.guards`)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import BACKEND
from tests.conftest import causal_lm
from tests.conftest import make_cnn
from tests.conftest import make_mlp
from tests.conftest import make_pair
from tests.conftest import token_batch

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 64)).astype("float32")
Y = RNG.integers(0, 10, 96)
FIT = {"batch_size": 16, "epochs": 1, "verbose": 0}


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """A SIGINT raises `KeyboardInterrupt`, as in a terminal, however the
    suite was started: a process started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python leaves it so."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def interrupt(monkeypatch):
    """Raises `KeyboardInterrupt` after the third batch of the next
    fit / evaluate / predict (and of every later one)."""

    def after_batch(original):
        def hook(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt
            return original(self, batch, logs)

        return hook

    for name in ("on_train_batch_end", "on_test_batch_end", "on_predict_batch_end"):
        monkeypatch.setattr(
            keras.callbacks.CallbackList, name, after_batch(getattr(keras.callbacks.CallbackList, name))
        )


def weights(model):
    return [np.array(w) for w in model.get_weights()]


def assert_usable(*models, unchanged=()):
    for model in models:
        values = weights(model)
        assert all(np.all(np.isfinite(w)) for w in values), model.name
    for model, before in unchanged:
        for a, b in zip(before, weights(model)):
            np.testing.assert_array_equal(a, b)


def interrupted(run):
    with pytest.raises(KeyboardInterrupt):
        run()


def compiled_distiller(student, teacher):
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("adam", "sparse_categorical_crossentropy")
    return distiller


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_distiller(interrupt, method):
    student, teacher = make_pair()
    before = weights(teacher)
    distiller = compiled_distiller(student, teacher)
    run = {
        "fit": lambda: distiller.fit(X, Y, **FIT),
        "evaluate": lambda: distiller.evaluate(X, Y, batch_size=16, verbose=0),
        "predict": lambda: distiller.predict(X, batch_size=16, verbose=0),
    }[method]
    interrupted(run)
    assert_usable(student, teacher, unchanged=[(teacher, before)])
    student.predict(X[:4], verbose=0), teacher.predict(X[:4], verbose=0)


@pytest.mark.parametrize("kind", ["feature", "hint", "fsp"])
def test_feature_distillers(interrupt, kind):
    student, teacher = make_pair()
    before = weights(teacher)
    pairs = [("teacher_hidden", "student_hidden")]
    if kind == "feature":
        distiller = kd.FeatureDistiller(student=student, teacher=teacher, pairs=pairs, projections="auto")
        distiller.compile("adam", "sparse_categorical_crossentropy")
        run = lambda: distiller.fit(X, Y, **FIT)  # noqa: E731
    elif kind == "hint":
        distiller = kd.HintDistiller(
            student=student, teacher=teacher, hint_layer="teacher_hidden", guided_layer="student_hidden"
        )
        distiller.compile("adam", "sparse_categorical_crossentropy")
        run = lambda: distiller.fit_hints(X, **FIT)  # noqa: E731
    else:
        student, teacher = make_cnn("student", (4, 4)), make_cnn("teacher", (4, 8, 4))
        before = weights(teacher)
        pairs = [(("teacher_conv1", "teacher_conv3"), ("student_conv1", "student_conv2"))]
        distiller = kd.FSPDistiller(student=student, teacher=teacher, pairs=pairs)
        distiller.compile("adam", "sparse_categorical_crossentropy", fsp_weight=1.0)
        images = X[:, :64].reshape(-1, 8, 8, 1)
        run = lambda: distiller.fit_features(images, **FIT)  # noqa: E731
    interrupted(run)
    inputs = images if kind == "fsp" else X
    assert_usable(student, teacher, unchanged=[(teacher, before)])
    student.predict(inputs[:4], verbose=0), teacher.predict(inputs[:4], verbose=0)


def test_mutual_learner(interrupt):
    a, b = make_mlp(16, name="a"), make_mlp(16, name="b")
    learner = kd.MutualLearner([a, b])
    learner.compile("adam", "sparse_categorical_crossentropy")
    interrupted(lambda: learner.fit(X, Y, **FIT))
    assert_usable(a, b)
    a.predict(X[:4], verbose=0), b.predict(X[:4], verbose=0)


@pytest.mark.parametrize("kind", ["chain", "born_again"])
def test_multi_stage_trainers_in_their_first_stage(interrupt, kind):
    # The first stage trains a plain model (the chain's teacher, the first
    # generation) through Keras' own fit.
    if kind == "chain":
        models = [make_mlp(32, name="teacher"), make_mlp(16, name="assistant"), make_mlp(8, name="student")]
        trainer = kd.AssistantChain(models, train_teacher=True)
    else:
        models = []

        def build():
            models.append(make_mlp(8, name=f"generation_{len(models)}"))
            return models[-1]

        trainer = kd.BornAgain(build, generations=2)
    trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    interrupted(lambda: trainer.fit(X, Y, **FIT))
    assert_usable(*models)
    models[0].predict(X[:4], verbose=0)


@pytest.mark.parametrize("method", ["lora", "qat"])
def test_quantize_student(interrupt, method):
    student, teacher = make_pair()
    before_teacher, before_student = weights(teacher), weights(student)
    interrupted(lambda: kd.quantize_student(student, teacher, X, Y, method=method, batch_size=16))
    assert_usable(student, teacher, unchanged=[(teacher, before_teacher), (student, before_student)])
    student.predict(X[:4], verbose=0), teacher.predict(X[:4], verbose=0)


def test_tune(interrupt, tmp_path):
    pytest.importorskip("keras_tuner")
    _, teacher = make_pair()
    before = weights(teacher)
    interrupted(
        lambda: kd.tune(
            lambda: make_mlp(8, name="candidate"),
            teacher,
            X,
            Y,
            validation_data=(X[:32], Y[:32]),
            max_trials=2,
            epochs=1,
            batch_size=16,
            directory=str(tmp_path),
            verbose=0,
        )
    )
    assert_usable(teacher, unchanged=[(teacher, before)])
    teacher.predict(X[:4], verbose=0)


def test_precompute_teacher_outputs(interrupt):
    _, teacher = make_pair()
    before = weights(teacher)
    interrupted(lambda: kd.precompute_teacher_outputs(teacher, X, batch_size=16))
    assert_usable(teacher, unchanged=[(teacher, before)])
    teacher.predict(X[:4], verbose=0)


@pytest.mark.parametrize("kind", ["causal_lm_fit", "causal_lm_predict", "on_policy"])
def test_language_model_distillers(interrupt, kind):
    teacher, student = causal_lm(1, 16, "teacher", dropout=0.0), causal_lm(1, 8, "student", dropout=0.0)
    before = weights(teacher)
    x, labels, mask = token_batch(64)
    if kind == "on_policy":
        distiller = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=1.0, seed=0)
        distiller.compile("adam")
        run = lambda: distiller.fit(x, labels, sample_weight=mask.astype("float32"), **FIT)  # noqa: E731
    else:
        distiller = kd.CausalLMDistiller(student=student, teacher=teacher, chunk_size=4)
        distiller.compile("adam", loss="sparse_categorical_crossentropy")
        if kind == "causal_lm_fit":
            run = lambda: distiller.fit(x, labels, **FIT)  # noqa: E731
        else:
            run = lambda: distiller.predict(x, batch_size=16, verbose=0)  # noqa: E731
    interrupted(run)
    assert_usable(student, teacher, unchanged=[(teacher, before)])
    student.predict(x, verbose=0), teacher.predict(x, verbose=0)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_real_ctrl_c_at_many_moments():
    """SIGINTs from a timer at 27 moments of Distiller.fit (12, with
    validation), evaluate, predict, precompute_teacher_outputs,
    MutualLearner.fit and HintDistiller.fit_hints (3 each)."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "robustness", "real_interrupts.py"), BACKEND],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    summary = lines[-1]
    bad = [line for line in lines[:-1] if line["problems"]]
    assert summary.get("summary") and not bad and result.returncode == 0, (bad, result.stderr[-2000:])
    assert summary["moments"] == 27 and summary["interrupted"] >= 12, summary
    # Some Ctrl-Cs landed while fit was stepping, and it stopped there.
    assert summary["fit_stopped_between_its_first_and_last_step"] >= 3, summary


def test_a_ctrl_c_ends_the_epoch_for_the_callbacks_and_skips_validation():
    student, teacher = make_pair()
    distiller = compiled_distiller(student, teacher)
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2 and not seen:
                os.kill(os.getpid(), signal.SIGINT)

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            seen.append(("train_end",))

    with pytest.raises(KeyboardInterrupt):
        distiller.fit(X, Y, batch_size=16, epochs=3, validation_data=(X[:32], Y[:32]), callbacks=[Watch()], verbose=0)
    assert seen == [("epoch_end", 0, ["distillation_loss", "loss", "student_loss"]), ("train_end",)]
    assert int(keras.ops.convert_to_numpy(distiller.optimizer.iterations)) == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_stops_at_once():
    student, teacher = make_pair()
    distiller = compiled_distiller(student, teacher)
    x, y = np.repeat(X, 20, axis=0), np.repeat(Y, 20)

    class Slow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)

    began = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        distiller.fit(x, y, batch_size=16, epochs=5, callbacks=[Slow()], verbose=0)
    assert time.perf_counter() - began < 10
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_teacher_is_usable_from_a_callback_during_fit():
    """On JAX too, where Keras holds every variable of the distiller, the
    teacher's included, in its step state for the epoch."""
    student, teacher = make_pair()
    before = weights(teacher)
    distiller = compiled_distiller(student, teacher)
    seen = []

    class TeacherAccuracy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch % 2 == 0:
                logits = teacher.predict(X[:16], verbose=0)
                seen.append(float(np.mean(np.argmax(logits, -1) == Y[:16])))

    distiller.fit(X, Y, batch_size=16, epochs=2, callbacks=[TeacherAccuracy()], verbose=0)
    assert len(seen) == 6 and len(set(seen)) == 1
    assert_usable(student, teacher, unchanged=[(teacher, before)])
    lambda_seen = []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: lambda_seen.append(teacher.predict(X[:4], verbose=0))
    )
    distiller.fit(X, Y, batch_size=16, epochs=1, callbacks=[callback], verbose=0)
    assert len(lambda_seen) == 6


def test_a_teacher_held_by_a_fit_in_another_thread_is_refused_with_the_fix():
    if BACKEND != "jax":
        pytest.skip("TensorFlow and PyTorch keep the weights in the variables during fit")
    from keras_distill import _compat

    student, teacher = make_pair()
    first = compiled_distiller(student, teacher)
    second = compiled_distiller(make_mlp(8, name="other_student"), teacher)
    errors = []

    def run_second():
        deadline = time.perf_counter() + 60
        while not _compat.is_emptied(teacher.variables[0]) and time.perf_counter() < deadline:
            time.sleep(0.001)
        try:
            second.fit(X, Y, batch_size=16, epochs=1, verbose=0)
        except ValueError as error:
            errors.append(str(error))

    thread = threading.Thread(target=run_second)
    thread.start()
    first.fit(np.repeat(X, 50, axis=0), np.repeat(Y, 50), batch_size=16, epochs=3, verbose=0)
    thread.join(60)
    assert errors and "clone_model(model); copy.set_weights(model.get_weights())" in errors[0], errors
    assert_usable(student, teacher)
