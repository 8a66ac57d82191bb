import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import make_pair
from tests.conftest import numpy_kl
from tests.conftest import numpy_sparse_ce

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def batch(digits, size=64):
    (x, y), _ = digits
    return x[:size], y[:size]


def predict(model, x):
    return ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("jit_compile", [False, "auto"])
def test_loss_equals_numpy_with_sample_weight(digits, jit_compile):
    x, y = batch(digits)
    student, teacher = make_pair()
    weights = np.random.default_rng(0).uniform(0, 2, size=len(x)).astype("float32")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=SCCE, alpha=0.3, temperature=3.0, jit_compile=jit_compile)
    expected = (
        0.3 * np.sum(weights * numpy_sparse_ce(y, predict(student, x))) / len(x)
        + 0.7 * np.sum(weights * numpy_kl(predict(teacher, x), predict(student, x), 3.0)) / len(x)
    )
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
    unregularized = 0.5 * numpy_sparse_ce(y, student_logits).mean() + 0.5 * numpy_kl(
        predict(teacher, x), student_logits, 2.0
    ).mean()
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
        np.testing.assert_allclose(
            logs["distillation_loss"], np.mean((centered(s) - centered(t)) ** 2), rtol=1e-5
        )
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
    assert kd.Distiller(student, prob_teacher).teacher_outputs == "probabilities"
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
    expected = 0.5 * numpy_sparse_ce(y, predict(student, x)).mean() + 0.5 * numpy_kl(
        predict(teacher, x).astype("float32"), predict(student, x), 2.0
    ).mean()
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
