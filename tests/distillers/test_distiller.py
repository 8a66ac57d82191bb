"""Distiller: the loss, training, errors, saving, mixed precision, several devices."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import BACKEND
from tests.conftest import log_softmax
from tests.conftest import make_cnn
from tests.conftest import make_mlp
from tests.conftest import make_pair
from tests.conftest import numpy_dkd
from tests.conftest import numpy_kl
from tests.conftest import numpy_sparse_ce

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def batch(digits, size=64):
    (x, y), _ = digits
    return x[:size], y[:size]


def predict(model, x):
    return ops.convert_to_numpy(model(x, training=False))


def compiled(**kwargs):
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", **kwargs)
    return distiller


CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


TOLERANCE = {"mixed_float16": 0.03, "mixed_bfloat16": 0.06}


def _optimizer():
    optimizer = keras.optimizers.Adam(3e-3)
    if keras.config.dtype_policy().name == "mixed_float16":
        # Keras' default dynamic loss scale starts at 2**15 and skips the
        # steps whose scaled gradients overflow until it has halved enough
        # (the first epoch's hint loss then lags float32's by 20-50%); start
        # where it would settle, so the comparison is of precision alone.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0**8)
    return optimizer


def _build(kind):
    teacher = make_cnn("teacher", (8, 16))
    student = make_cnn("student", (4, 8))
    if kind == "distiller":
        model = kd.Distiller(student=student, teacher=teacher)
        model.compile(optimizer=_optimizer(), loss=CE, alpha=0.5, temperature=4.0)
    elif kind == "hint":
        model = kd.HintDistiller(
            student=student, teacher=teacher, hint_layer="teacher_conv2", guided_layer="student_conv2"
        )
        model.compile(optimizer=_optimizer(), loss=CE, alpha=0.5, temperature=4.0, hint_weight=0.5)
    else:
        model = kd.MutualLearner([student, make_cnn("peer", (8, 8))], temperature=2.0)
        model.compile(optimizer=_optimizer(), loss=CE)
    return model


def _models(model):
    if isinstance(model, kd.MutualLearner):
        return model.peers
    extra = [model.regressors[0]] if isinstance(model, kd.HintDistiller) else []
    return [model.student, *model.teachers, *extra]


def _run(kind, policy, images, labels, weights=None):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = _build(kind)
    model.evaluate(images[:8], labels[:8], verbose=0)  # builds regressors and slots
    if weights is not None:
        for target, values in zip(_models(model), weights):
            target.set_weights(values)
    keras.config.set_dtype_policy("float32")
    evaluation = model.evaluate(images, labels, batch_size=64, verbose=0, return_dict=True)
    history = model.fit(images, labels, batch_size=32, epochs=4, shuffle=False, verbose=0).history
    return model, evaluation, history


def small_batch(digits):
    (x, y), _ = digits
    return x[:64], y[:64]


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


CASES = ("distiller", "hint", "mutual")


def _run_script(script):
    result = subprocess.run(
        [sys.executable, "-m", f"tests.distillers.{script}"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_same_training(case):
    single, parallel = case["single"], case["parallel"]
    assert set(single["history"]) == set(parallel["history"])
    assert "loss" in single["history"]
    for key, values in single["history"].items():
        np.testing.assert_allclose(parallel["history"][key], values, rtol=1e-5, err_msg=key)
    assert len(single["weights"]) == len(parallel["weights"])
    for a, b in zip(single["weights"], parallel["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, "auto"])
def test_loss_equals_numpy_with_sample_weight(digits, jit_compile):
    x, y = batch(digits)
    student, teacher = make_pair()
    weights = np.random.default_rng(0).uniform(0, 2, size=len(x)).astype("float32")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE, alpha=0.3, temperature=3.0, jit_compile=jit_compile)
    expected = 0.3 * np.sum(weights * numpy_sparse_ce(y, predict(student, x))) / len(x) + 0.7 * np.sum(
        weights * numpy_kl(predict(teacher, x), predict(student, x), 3.0)
    ) / len(x)
    logs = distiller.evaluate(x, y, sample_weight=weights, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    # The first training step reports the loss of the weights before it.
    logs = distiller.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


def test_regularization_of_student_only(digits):
    x, y = batch(digits)
    student = make_mlp(
        8,
        name="student",
        kernel_regularizer=keras.regularizers.L2(0.05),
        activity_regularizer=keras.regularizers.L1(0.01),
    )
    teacher = make_mlp(32, name="teacher", activity_regularizer=keras.regularizers.L1(100.0))
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE, alpha=0.5, temperature=2.0)
    student_logits = predict(student, x)
    regularization = float(sum(ops.convert_to_numpy(loss) for loss in student.losses))
    assert regularization > 0.01
    unregularized = (
        0.5 * numpy_sparse_ce(y, student_logits).mean()
        + 0.5 * numpy_kl(predict(teacher, x), student_logits, 2.0).mean()
    )
    for _ in range(2):  # a second call must not pick up the teacher's losses either
        logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
        np.testing.assert_allclose(logs["loss"], unregularized + regularization, rtol=1e-5)
    logs = distiller.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], unregularized + regularization, rtol=1e-5)


def test_teacher_bit_identical_student_trained(digits):
    (x, y), _ = digits
    teacher = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10),
        ],
        name="teacher",
    )
    student = make_mlp(8, name="student")
    teacher_before = [np.copy(w) for w in teacher.get_weights()]
    student_before = [np.copy(w) for w in student.get_weights()]
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=SCCE, alpha=0.5)
    trainable_ids = {id(v) for v in distiller.trainable_variables}
    assert trainable_ids == {id(v) for v in student.trainable_variables}
    distiller.fit(x, y, epochs=2, batch_size=64, verbose=0)
    for before, after in zip(teacher_before, teacher.get_weights()):
        assert np.array_equal(before, after)  # includes BatchNorm statistics
    assert all(not np.array_equal(b, a) for b, a in zip(student_before, student.get_weights()))
    teacher_ids = {id(v) for v in teacher.variables}
    optimizer_slots = [v for v in distiller.optimizer.variables if len(v.shape) > 0]
    assert len(optimizer_slots) == 2 * len(student.trainable_variables)
    assert not teacher_ids & {id(v) for v in distiller.trainable_variables}


def test_history_and_evaluate_report_the_student(digits):
    (x, y), (x_test, y_test) = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=SCCE, metrics=["accuracy"], alpha=0.1, temperature=4.0)
    history = distiller.fit(x, y, epochs=2, batch_size=128, validation_data=(x_test, y_test), verbose=0)
    expected = {"loss", "student_loss", "distillation_loss", "accuracy"}
    assert expected | {f"val_{k}" for k in expected} <= set(history.history)
    logs = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)
    for key in expected:
        np.testing.assert_allclose(logs[key], history.history[f"val_{key}"][-1], rtol=1e-5)
    student_accuracy = np.mean(np.argmax(predict(student, x_test), -1) == y_test)
    np.testing.assert_allclose(logs["accuracy"], student_accuracy, rtol=1e-6)
    np.testing.assert_allclose(distiller.predict(x_test, verbose=0), predict(student, x_test), rtol=1e-5, atol=1e-6)


def test_schedulers_take_effect_in_the_compiled_step(digits):
    x, y = batch(digits, 128)
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    # A zero learning rate keeps the weights fixed, so each epoch's logged
    # losses are exact functions of the scheduled values.
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SCCE)
    alphas, temperatures = [0.0, 1.0, 0.25], [1.0, 4.0, 4.0]
    history = distiller.fit(
        x,
        y,
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[
            kd.callbacks.AlphaScheduler(lambda epoch: alphas[epoch]),
            kd.callbacks.TemperatureScheduler(lambda epoch, current: temperatures[epoch]),
        ],
    )
    logs = history.history
    assert logs["alpha"] == alphas and logs["temperature"] == temperatures
    teacher_logits, student_logits = predict(teacher, x), predict(student, x)
    for epoch, temperature in enumerate(temperatures):
        np.testing.assert_allclose(
            logs["distillation_loss"][epoch], numpy_kl(teacher_logits, student_logits, temperature).mean(), rtol=1e-5
        )
    np.testing.assert_allclose(logs["loss"][0], logs["distillation_loss"][0], rtol=1e-6)
    np.testing.assert_allclose(logs["loss"][1], logs["student_loss"][1], rtol=1e-6)
    np.testing.assert_allclose(
        logs["loss"][2], 0.25 * logs["student_loss"][2] + 0.75 * logs["distillation_loss"][2], rtol=1e-6
    )
    assert distiller.alpha == 0.25 and distiller.temperature == 4.0


def test_scheduler_values_are_validated(digits):
    x, y = batch(digits)
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE)
    with pytest.raises(ValueError, match=r"alpha=1.5"):
        distiller.fit(x, y, verbose=0, callbacks=[kd.callbacks.AlphaScheduler(lambda epoch: 1.5)])
    with pytest.raises(ValueError, match=r"temperature=0.0"):
        distiller.fit(x, y, verbose=0, callbacks=[kd.callbacks.TemperatureScheduler(lambda epoch: 0.0)])


def test_keras_io_tutorial_compile_still_works(digits):
    x, y = batch(digits)
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=SCCE,
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.1,
        temperature=10,
    )
    t_logits, s_logits = predict(teacher, x), predict(student, x)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p_t = np.clip(softmax(t_logits / 10), 1e-7, 1)
    p_s = np.clip(softmax(s_logits / 10), 1e-7, 1)
    tutorial_distillation = np.mean(np.sum(p_t * np.log(p_t / p_s), -1)) * 100
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], tutorial_distillation, rtol=1e-4)
    np.testing.assert_allclose(
        logs["loss"], 0.1 * numpy_sparse_ce(y, s_logits).mean() + 0.9 * tutorial_distillation, rtol=1e-4
    )
    distiller.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "distillation_loss, reference",
    [
        ("cross_entropy", lambda t, s: numpy_kl(t, s, 2.0).mean()),  # plus entropy, checked below
        ("logit_matching", None),
        (kd.losses.SoftTargetKLDivergence(temperature=2.0), lambda t, s: numpy_kl(t, s, 2.0).mean()),
    ],
)
def test_distillation_loss_choices(digits, distillation_loss, reference):
    x, y = batch(digits)
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE, distillation_loss=distillation_loss)
    assert distiller.temperature == 2.0
    t, s = predict(teacher, x), predict(student, x)
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    if distillation_loss == "cross_entropy":
        log_p = np.log(np.exp(t / 2) / np.exp(t / 2).sum(-1, keepdims=True))
        entropy = -4.0 * np.sum(np.exp(log_p) * log_p, -1).mean()
        np.testing.assert_allclose(logs["distillation_loss"], reference(t, s) + entropy, rtol=1e-4)
    elif distillation_loss == "logit_matching":
        centered = lambda z: z - z.mean(-1, keepdims=True)  # noqa: E731
        np.testing.assert_allclose(logs["distillation_loss"], np.mean((centered(s) - centered(t)) ** 2), rtol=1e-5)
    else:
        np.testing.assert_allclose(logs["distillation_loss"], reference(t, s), rtol=1e-5)


def test_loss_object_is_not_mutated_and_temperature_comes_from_it(digits):
    student, teacher = make_pair()
    loss = kd.losses.SoftTargetKLDivergence(temperature=5.0)
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE, distillation_loss=loss)
    assert distiller.temperature == 5.0
    distiller.temperature = 1.5
    assert loss.temperature == 5.0


def test_softmax_teacher_is_read_as_probabilities(digits):
    x, y = batch(digits)
    student, logit_teacher = make_pair()
    prob_teacher = keras.Sequential([logit_teacher, keras.layers.Softmax()], name="prob_teacher")
    losses = []
    for teacher in (logit_teacher, prob_teacher):
        distiller = kd.Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer="sgd", loss=SCCE, alpha=0.0, temperature=4.0)
        losses.append(distiller.evaluate(x, y, batch_size=len(x), verbose=0))
    assert kd.Distiller(student=student, teacher=prob_teacher).teacher_output_kind == "probabilities"
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)


def test_label_free_distillation(digits):
    (x, _), _ = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=None, alpha=0.0, temperature=2.0)
    before = distiller.evaluate(x, verbose=0, return_dict=True)["loss"]
    history = distiller.fit(x, epochs=3, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < before
    np.testing.assert_allclose(history.history["student_loss"], 0.0)


def test_mixed_precision_teacher_with_float32_student(digits):
    x, y = batch(digits)
    keras.config.set_dtype_policy("mixed_float16")
    teacher = make_mlp(32, name="teacher")
    keras.config.set_dtype_policy("float32")
    student = make_mlp(8, name="student")
    assert teacher.compute_dtype == "float16"
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss=SCCE, alpha=0.5, temperature=2.0)
    expected = (
        0.5 * numpy_sparse_ce(y, predict(student, x)).mean()
        + 0.5 * numpy_kl(predict(teacher, x).astype("float32"), predict(student, x), 2.0).mean()
    )
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_jit_compile_on_and_off_train_alike(digits):
    # On torch, jit_compile=True goes through torch.compile: about 80 s here.
    x, y = batch(digits, 128)
    results = []
    for jit_compile in (True, False):
        keras.utils.set_random_seed(0)
        student, teacher = make_pair()
        distiller = kd.Distiller(student=student, teacher=teacher)
        distiller.compile(optimizer="sgd", loss=SCCE, jit_compile=jit_compile)
        distiller.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
        results.append(student.get_weights())
    for on, off in zip(*results):
        np.testing.assert_allclose(on, off, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match=rf"Received: alpha={alpha}\. Use e\.g\. alpha=0\.5"):
        compiled(loss=SCCE, alpha=alpha)


def test_alpha_not_a_number():
    with pytest.raises(TypeError, match="alpha='0.5'"):
        compiled(loss=SCCE, alpha="0.5")


@pytest.mark.parametrize("temperature", [0, -2.0])
def test_temperature_not_positive(temperature):
    with pytest.raises(ValueError, match=rf"Received: temperature={temperature}\. Use e\.g\."):
        compiled(loss=SCCE, temperature=temperature)


def test_conflicting_temperatures():
    with pytest.raises(ValueError, match="Two temperatures"):
        compiled(loss=SCCE, temperature=2.0, distillation_loss=kd.losses.SoftTargetKLDivergence(temperature=4.0))


def test_output_shapes_differ():
    with pytest.raises(
        ValueError, match=r"teacher 'teacher' outputs \(batch, 10\) and student 'student' outputs \(batch, 5\)"
    ):
        kd.Distiller(student=make_mlp(name="student", classes=5), teacher=make_mlp(name="teacher"))


def test_single_unit_output():
    with pytest.raises(ValueError, match="single unit"):
        kd.Distiller(student=make_mlp(name="student", classes=1), teacher=make_mlp(name="teacher", classes=1))


def test_same_model_twice():
    model = make_mlp(name="model")
    with pytest.raises(ValueError, match="clone_model"):
        kd.Distiller(student=model, teacher=model)


@pytest.mark.parametrize("argument", ["student", "teacher"])
def test_not_a_model(argument):
    models = {"student": make_mlp(name="student"), "teacher": make_mlp(name="teacher")}
    models[argument] = keras.layers.Dense(10)
    with pytest.raises(TypeError, match=rf"`{argument}` must be a keras.Model. Received: {argument}="):
        kd.Distiller(**models)


def test_softmax_student():
    with pytest.raises(ValueError, match="ends in a softmax.*activation=None"):
        kd.Distiller(student=make_mlp(name="student", softmax=True), teacher=make_mlp(name="teacher"))


def test_unknown_distillation_loss_name():
    with pytest.raises(ValueError, match=r"Unknown `distillation_loss` name. Received: distillation_loss='kld2'"):
        compiled(loss=SCCE, distillation_loss="kld2")


def test_probability_loss_for_the_student():
    with pytest.raises(ValueError, match="from_logits=True"):
        compiled(loss=keras.losses.SparseCategoricalCrossentropy())


def test_loss_name_is_built_for_logits(digits):
    (x, y), _ = digits
    distiller = compiled(loss="sparse_categorical_crossentropy", alpha=1.0)
    result = distiller.evaluate(x[:64], y[:64], batch_size=64, verbose=0, return_dict=True)
    expected = numpy_sparse_ce(y[:64], distiller.student.predict(x[:64], verbose=0)).mean()
    np.testing.assert_allclose(result["student_loss"], expected, rtol=1e-4)


def test_no_loss_needs_alpha_zero():
    with pytest.raises(ValueError, match="alpha=0.0"):
        compiled(loss=None, alpha=0.5)
    distiller = compiled(loss=None, alpha=0.0)
    with pytest.raises(ValueError, match="compiled with loss=None"):
        distiller.alpha = 0.3


def test_both_names_of_an_argument():
    with pytest.raises(ValueError, match="student_loss_fn"):
        compiled(loss=SCCE, student_loss_fn=SCCE)


def test_loss_weights_refused():
    with pytest.raises(ValueError, match="loss_weights"):
        compiled(loss=SCCE, loss_weights=[1.0])


def test_labels_missing():
    distiller = compiled(loss=SCCE)
    with pytest.raises(ValueError, match=r"no labels \(y=None\)"):
        distiller.fit(np.zeros((4, 64), "float32"), verbose=0)


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
def test_before_compile(method):
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    x, y = np.zeros((4, 64), "float32"), np.zeros((4,), "int32")
    with pytest.raises(ValueError, match=rf"Distiller.{method}\(\) was called before compile\(\)"):
        getattr(distiller, method)(x, y)


def test_subclassed_teacher_shape_checked_at_first_step():
    class Teacher(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(7)

        def call(self, x):
            return self.dense(x)

    distiller = kd.Distiller(student=make_mlp(name="student"), teacher=Teacher(name="sub"))
    distiller.compile(optimizer="sgd", loss=SCCE)
    weights = [np.copy(w) for w in distiller.student.get_weights()]
    with pytest.raises(ValueError, match=r"teacher 'sub' outputs \(batch, 7\)"):
        distiller.fit(np.zeros((8, 64), "float32"), np.zeros(8, "int32"), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(weights, distiller.student.get_weights()))


def test_keras_file_round_trip_keeps_training(digits, tmp_path):
    (x, y), (x_test, y_test) = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        alpha=0.2,
        distillation_loss=kd.losses.SoftTargetKLDivergence(temperature=3.0),
    )
    distiller.fit(x, y, epochs=1, verbose=0, callbacks=[kd.callbacks.AlphaScheduler(lambda epoch: 0.7)])
    path = os.path.join(tmp_path, "distiller.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)

    assert isinstance(loaded, kd.Distiller) and loaded.compiled
    assert loaded.alpha == 0.7 and loaded.temperature == 3.0
    # Frozen for the distiller's steps, yet the user's model is left trainable.
    assert loaded.teacher.trainable is True
    assert not {id(v) for v in loaded.teacher.variables} & {id(v) for v in loaded.trainable_variables}
    assert int(loaded.optimizer.iterations.numpy()) == int(distiller.optimizer.iterations.numpy())
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), distiller.predict(x_test, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(
        loaded.evaluate(x_test, y_test, verbose=0), distiller.evaluate(x_test, y_test, verbose=0), rtol=1e-5
    )
    # Same weights and optimizer state: one more epoch agrees, with no compile() call.
    distiller.fit(x, y, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(distiller.student.get_weights(), loaded.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_config_round_trip():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher, teacher_output_kind="logits", name="d")
    restored = kd.Distiller.from_config(distiller.get_config())
    assert restored.name == "d" and restored.teacher_output_kind == "logits"
    assert [layer.name for layer in restored.student.layers] == [layer.name for layer in student.layers]
    assert restored.get_config() == distiller.get_config()


def test_compile_config_round_trip():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss="sparse_categorical_crossentropy",
        distillation_loss=keras.losses.KLDivergence(),
        alpha=0.25,
        temperature=6.0,
    )
    other = kd.Distiller(student=make_mlp(name="s2"), teacher=make_mlp(name="t2"))
    other.compile_from_config(distiller.get_compile_config())
    assert other.alpha == 0.25 and other.temperature == 6.0
    assert isinstance(other.optimizer, keras.optimizers.SGD)
    np.testing.assert_allclose(float(other.optimizer.learning_rate.numpy()), 0.05, rtol=1e-6)
    # A Keras loss on probabilities is softened at the distiller's temperature.
    assert isinstance(other.distillation_loss, kd.losses.SoftenedLoss)
    assert isinstance(other.distillation_loss.loss, keras.losses.KLDivergence)


def test_student_saves_as_its_own_architecture(digits, tmp_path):
    (x, y), (x_test, _) = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    distiller.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "student.keras")
    distiller.student.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(student)
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), student.predict(x_test, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("kind", ["distiller", "hint", "mutual"])
def test_mixed_precision_matches_float32(kind, policy, digit_images):
    (images, labels), _ = digit_images
    images, labels = images[:256], labels[:256]
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    initial = _build(kind)
    initial.evaluate(images[:8], labels[:8], verbose=0)
    weights = [model.get_weights() for model in _models(initial)]
    _, reference_eval, reference_history = _run(kind, "float32", images, labels, weights)
    model, evaluation, history = _run(kind, policy, images, labels, weights)

    compute = "float16" if policy == "mixed_float16" else "bfloat16"
    first = _models(model)[0]
    assert first.compute_dtype == compute and first.variable_dtype == "float32"
    assert keras.backend.standardize_dtype(first(images[:4]).dtype) == compute
    tolerance = TOLERANCE[policy]
    for key, value in reference_eval.items():
        np.testing.assert_allclose(evaluation[key], value, rtol=tolerance, atol=1e-3, err_msg=key)
    for key, values in reference_history.items():
        assert np.all(np.isfinite(history[key])), key
        np.testing.assert_allclose(history[key][-1], values[-1], rtol=tolerance, atol=1e-2, err_msg=key)


def test_several_teachers_and_classes_round_trip(digits, tmp_path):
    x, y = small_batch(digits)
    student = make_mlp(8, name="student", classes=2)
    teachers = [make_mlp(16, name="a"), make_mlp(12, name="b")]
    distiller = kd.Distiller(student=student, teacher=teachers, teacher_weights=[1, 2], teacher_classes=[0, 1])
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy", temperature=4.0)
    distiller.fit(x, y % 2, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "multi.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.teachers) == 2 and loaded.teacher_classes == [0, 1]
    np.testing.assert_allclose(loaded.teacher_weights, [1 / 3, 2 / 3])
    np.testing.assert_allclose(loaded.evaluate(x, y % 2, verbose=0), distiller.evaluate(x, y % 2, verbose=0), rtol=1e-5)
    loaded.fit(x, y % 2, epochs=1, verbose=0)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is TensorFlow's")
def test_mirrored_strategy_matches_single_device():
    output = _run_script("mirrored_script")
    assert output["replicas"] == 2
    # Mirrored: each variable has one copy per replica.
    assert all(len(devices) == 2 for devices in output["variable_devices"])
    for kind in CASES:
        _assert_same_training(output[kind])


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution runs on JAX")
def test_keras_distribution_matches_single_device():
    output = _run_script("data_parallel_script")
    assert output["replicas"] == 2
    # DataParallel replicates the kernel on both devices; ModelParallel
    # splits its columns between them.
    for sharding in output["kernel_sharding"]:
        assert sharding["devices"] == 2 and all(axis == "None" for axis in sharding["spec"])
    assert output["model_parallel_kernel_sharding"] == {"devices": 2, "spec": ["None", "model"]}
    for kind in CASES + ("distiller_model_parallel",):
        _assert_same_training(output[kind])


def test_a_refused_compile_changes_nothing():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher, teacher_top_k=3)
    with pytest.raises(
        ValueError, match="forward KL, the reverse KL or the generalized JSD.*Received: distillation_loss=DecoupledKD"
    ):
        distiller.compile(optimizer="sgd", loss=SCCE, distillation_loss="dkd", alpha=0.2, temperature=5.0)
    assert not distiller.compiled and distiller.alpha == 0.5 and distiller.temperature == 2.0
    with pytest.raises(ValueError, match="before compile"):
        distiller.fit(np.zeros((4, 64), "float32"), np.zeros((4,), "int32"), verbose=0)

    distiller.compile(optimizer=keras.optimizers.SGD(0.1), loss=SCCE, alpha=0.3, temperature=3.0)
    optimizer, config = distiller.optimizer, distiller.get_compile_config()
    for bad in ({"distillation_loss": "dist"}, {"alpha": 2.0}, {"loss_weights": [1.0]}, {"temperature": -1.0}):
        with pytest.raises(ValueError):
            distiller.compile(optimizer="adam", loss=SCCE, **bad)
        assert distiller.optimizer is optimizer and distiller.get_compile_config() == config
        assert distiller.alpha == 0.3 and distiller.temperature == 3.0


def test_labels_reach_dkd_and_standardization_reaches_both_models(digits):
    x, y = batch(digits)
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE, alpha=0.3, temperature=4.0, distillation_loss="dkd")
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    teacher_logits, student_logits = predict(teacher, x), predict(student, x)
    np.testing.assert_allclose(
        logs["distillation_loss"], numpy_dkd(teacher_logits, student_logits, y, 1.0, 8.0, 4.0).mean(), rtol=1e-4
    )

    def z(logits):
        return (logits - logits.mean(-1, keepdims=True)) / (logits.std(-1, ddof=1, keepdims=True) + 1e-7)

    for loss, expected in (
        ("kl", numpy_kl(z(teacher_logits), z(student_logits), 2.0).mean()),
        ("dkd", numpy_dkd(z(teacher_logits), z(student_logits), y, 1.0, 8.0, 2.0).mean()),
    ):
        distiller.compile(
            optimizer="sgd", loss=SCCE, alpha=0.3, temperature=2.0, distillation_loss=loss, standardize_logits=True
        )
        logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
        np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4, err_msg=loss)
        np.testing.assert_allclose(logs["student_loss"], numpy_sparse_ce(y, student_logits).mean(), rtol=1e-5)
    assert distiller.get_compile_config()["standardize_logits"] is True


def test_a_loss_that_needs_labels_is_refused_on_unlabeled_data(digits):
    x, y = batch(digits)
    student, teacher = make_pair()
    before = [w.copy() for w in student.get_weights()]
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=None, alpha=0.0, distillation_loss="dkd")
    with pytest.raises(ValueError, match="DecoupledKD needs the labels.*no labels"):
        distiller.fit(x, epochs=1, verbose=0)
    for a, b in zip(before, student.get_weights()):
        np.testing.assert_array_equal(a, b)
    distiller.fit(x, y, epochs=1, verbose=0)  # with labels it trains
    with pytest.raises(TypeError, match="standardize_logits"):
        distiller.compile(optimizer="sgd", loss=SCCE, standardize_logits="yes")
    top_k = kd.Distiller(student=make_mlp(8, name="s"), teacher=make_mlp(16, name="t"), teacher_top_k=3)
    with pytest.raises(ValueError, match="standardize_logits=True needs every teacher logit"):
        top_k.compile(optimizer="sgd", loss=SCCE, standardize_logits=True)


@pytest.mark.parametrize("column", [False, True], ids=["labels (n,)", "labels (n, 1)"])
def test_metrics_leave_out_the_labels_the_loss_ignores(digits, column):
    (x, y), _ = digits
    x, y = x[:64], y[:64].copy()
    y[24:] = -1
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    predicted = np.argmax(student.predict(x, verbose=0), axis=-1)
    given = y[:, None] if column else y
    logs = distiller.evaluate(x, given, batch_size=16, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(np.mean(predicted[:24] == y[:24]), abs=1e-6)
    # Each metric once: the list form has as many values as the dict.
    assert len(distiller.evaluate(x, given, batch_size=16, verbose=0)) == len(logs)


@pytest.mark.parametrize(
    "distiller_class",
    [kd.Distiller, kd.FeatureDistiller, kd.HintDistiller, kd.FSPDistiller, kd.CausalLMDistiller, kd.OnPolicyDistiller],
)
def test_models_are_passed_by_keyword(distiller_class):
    big, small = make_mlp(32, name="big"), make_mlp(8, name="small")
    name = distiller_class.__name__
    # keras.distillation's order: by position it would train the big model.
    with pytest.raises(
        TypeError, match=rf"{name} takes its models by keyword: {name}\(student=\.\.\., teacher=\.\.\.\)"
    ):
        distiller_class(big, small)
    with pytest.raises(TypeError, match=r"keras\.distillation\.Distiller takes \(teacher, student\)"):
        distiller_class(small, teacher=big)
    with pytest.raises(TypeError, match="Missing: teacher"):
        distiller_class(student=small)
    assert big.get_weights()[0].shape == (64, 32)  # refused before anything was built around them


class AlwaysTrainingTeacher(keras.Model):
    """A teacher whose `call` defaults to training=True, with dropout: run
    without `training=False` it is random."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.dropout = keras.layers.Dropout(0.5)
        self.head = keras.layers.Dense(10)

    def call(self, inputs, training=True):
        return self.head(self.dropout(self.hidden(inputs), training=training))


def test_teacher_logits_are_the_inference_mixture_of_the_teachers(digits):
    """`compute_teacher_logits`: one teacher's logits as they are, several
    teachers' as T * log(sum_k w_k softmax(z_k / T)) with equal weights by
    default, each teacher run for inference (no dropout) even when its
    `call` defaults to training=True."""
    x, _ = small_batch(digits)
    keras.utils.set_random_seed(3)
    random_teacher = AlwaysTrainingTeacher(name="random_teacher")
    random_teacher(x[:1])
    plain = make_mlp(16, name="plain")
    z_random = ops.convert_to_numpy(random_teacher(x, training=False))
    z_plain = ops.convert_to_numpy(plain(x, training=False))
    assert not np.allclose(ops.convert_to_numpy(random_teacher(x)), z_random)  # dropout by default

    alone = kd.Distiller(student=make_mlp(8, name="student"), teacher=random_teacher)
    alone.compile(optimizer="sgd", loss=SCCE, temperature=2.0)
    np.testing.assert_allclose(ops.convert_to_numpy(alone.compute_teacher_logits(x)), z_random, rtol=1e-5, atol=1e-6)

    mixed = kd.Distiller(student=make_mlp(8, name="student_2"), teacher=[random_teacher, plain])
    mixed.compile(optimizer="sgd", loss=SCCE, temperature=2.0)
    probabilities = 0.5 * np.exp(log_softmax(z_random / 2.0)) + 0.5 * np.exp(log_softmax(z_plain / 2.0))
    np.testing.assert_allclose(
        ops.convert_to_numpy(mixed.compute_teacher_logits(x)), 2.0 * np.log(probabilities), rtol=1e-4, atol=1e-5
    )


def test_weighted_metrics_are_weighted_by_sample_weight(digits):
    x, y = small_batch(digits)
    weights = np.linspace(0.0, 2.0, len(x)).astype("float32")
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="sgd",
        loss=SCCE,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="weighted_accuracy")],
    )
    correct = np.argmax(student.predict(x, verbose=0), axis=-1) == y
    logs = distiller.evaluate(x, y, sample_weight=weights, batch_size=64, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(np.mean(correct), abs=1e-6)
    assert logs["weighted_accuracy"] == pytest.approx(np.sum(weights * correct) / np.sum(weights), abs=1e-6)


def test_ignored_labels_leave_the_metrics_logits_unchanged(digits):
    """A metric on logits (cross-entropy) sees the student's logits as
    they are, on the labelled examples only, and never label -1 (torch
    refused it as out of bounds)."""
    x, y = small_batch(digits)
    y = y.copy()
    y[40:] = -1
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        metrics=[keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="ce")],
    )
    logits = student.predict(x, verbose=0)
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert logs["ce"] == pytest.approx(np.mean(numpy_sparse_ce(y[:40], logits[:40])), rel=1e-5)
