"""Distiller with several outputs (a dict or a list), several weighted
distillation losses, and what a keras.distillation user brings along."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from tests.conftest import make_pair
from tests.conftest import numpy_kl

RNG = np.random.default_rng(0)
X = RNG.normal(size=(48, 6)).astype("float32")
Y_CLASS = RNG.integers(0, 4, 48)
Y_VALUE = RNG.normal(size=(48, 1)).astype("float32")
Y = {"cls": Y_CLASS, "reg": Y_VALUE}


def two_headed(units, seed, *, as_list=False, name="model", softmax=False, reg_units=1, keys=("cls", "reg")):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(units, activation="relu")(inputs)
    cls = keras.layers.Dense(4, activation="softmax" if softmax else None, name=keys[0])(hidden)
    reg = keras.layers.Dense(reg_units, name=keys[1])(hidden)
    return keras.Model(inputs, [cls, reg] if as_list else {keys[0]: cls, keys[1]: reg}, name=name)


class TwoHeaded(keras.Model):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.cls = keras.layers.Dense(4)
        self.reg = keras.layers.Dense(1)

    def call(self, inputs):
        hidden = self.hidden(inputs)
        return {"cls": self.cls(hidden), "reg": self.reg(hidden)}


def numpy_ce(labels, logits):
    log_probs = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1, keepdims=True))
    log_probs -= logits.max(-1, keepdims=True)
    return -np.mean(log_probs[np.arange(len(labels)), labels])


def predict(model, x):
    return keras.tree.map_structure(ops.convert_to_numpy, model(x, training=False))


COMPILE = dict(
    loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
    loss_weights={"cls": 1.0, "reg": 0.5},
    distillation_loss={
        "cls": ["kl", kd.losses.SoftTargetKLDivergence(temperature=1.0)],
        "reg": keras.losses.MeanSquaredError(),
    },
    distillation_loss_weights={"cls": [0.7, 0.3], "reg": 2.0},
    alpha=0.4,
    temperature=3.0,
)


def expected_loss(teacher, student, alpha=0.4):
    zt, zs = predict(teacher, X), predict(student, X)
    hard = 1.0 * numpy_ce(Y_CLASS, zs["cls"]) + 0.5 * np.mean((zs["reg"] - Y_VALUE) ** 2)
    distillation = (
        0.7 * np.mean(numpy_kl(zt["cls"], zs["cls"], 3.0))
        + 0.3 * np.mean(numpy_kl(zt["cls"], zs["cls"], 1.0))
        + 2.0 * np.mean((zt["reg"] - zs["reg"]) ** 2)
    )
    return hard, distillation, alpha * hard + (1 - alpha) * distillation


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_dict_outputs_loss_is_the_weighted_sum_over_outputs(kind):
    if kind == "functional":
        teacher, student = two_headed(16, 1, name="teacher"), two_headed(8, 2, name="student")
    else:
        teacher, student = TwoHeaded(16, name="teacher"), TwoHeaded(8, name="student")
        teacher(X[:1]), student(X[:1])
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", metrics={"cls": ["accuracy"]}, **COMPILE)
    result = distiller.evaluate(X, Y, verbose=0, return_dict=True)
    hard, distillation, total = expected_loss(teacher, student)
    np.testing.assert_allclose(result["student_loss"], hard, rtol=1e-5)
    np.testing.assert_allclose(result["distillation_loss"], distillation, rtol=1e-5)
    np.testing.assert_allclose(result["loss"], total, rtol=1e-5)
    assert "cls_accuracy" in result


def test_dict_outputs_train_the_student_alone_and_save():
    teacher, student = two_headed(16, 1, name="teacher"), two_headed(8, 2, name="student")
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student_weights = [w.copy() for w in student.get_weights()]
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", metrics={"cls": ["accuracy"]}, **COMPILE)
    history = distiller.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a) for b, a in zip(student_weights, student.get_weights()))
    assert set(distiller.predict(X, verbose=0)) == {"cls", "reg"}

    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/distiller.keras"
        distiller.save(path)
        loaded = keras.saving.load_model(path)
    expected = distiller.evaluate(X, Y, verbose=0, return_dict=True)
    np.testing.assert_allclose(loaded.evaluate(X, Y, verbose=0, return_dict=True)["loss"], expected["loss"], rtol=1e-5)
    loaded.fit(X, Y, epochs=1, verbose=0)


def test_list_outputs_take_losses_by_position_or_name():
    teacher = two_headed(16, 1, as_list=True, name="teacher")
    student = two_headed(8, 2, as_list=True, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        "sgd",
        loss=["sparse_categorical_crossentropy", "mse"],
        distillation_loss={"cls": "kl"},
        metrics=[["accuracy"], []],
        alpha=0.5,
    )
    result = distiller.evaluate(X, [Y_CLASS, Y_VALUE], verbose=0, return_dict=True)
    zt, zs = predict(teacher, X), predict(student, X)
    hard = numpy_ce(Y_CLASS, zs[0]) + np.mean((zs[1] - Y_VALUE) ** 2)
    distillation = np.mean(numpy_kl(zt[0], zs[0], 2.0))
    np.testing.assert_allclose(result["loss"], 0.5 * hard + 0.5 * distillation, rtol=1e-5)
    assert "cls_accuracy" in result
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss=[None, "mse"], distillation_loss={0: "kl"}, alpha=0.5)
    result = distiller.evaluate(X, {"reg": Y_VALUE}, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["student_loss"], np.mean((zs[1] - Y_VALUE) ** 2), rtol=1e-5)


def test_outputs_not_named_train_on_labels_only():
    teacher, student = two_headed(16, 1, name="teacher"), two_headed(8, 2, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss={"reg": "mse"}, distillation_loss={"cls": "kl"}, alpha=0.5)
    result = distiller.evaluate(X, {"reg": Y_VALUE}, verbose=0, return_dict=True)
    zt, zs = predict(teacher, X), predict(student, X)
    np.testing.assert_allclose(result["student_loss"], np.mean((zs["reg"] - Y_VALUE) ** 2), rtol=1e-5)
    np.testing.assert_allclose(result["distillation_loss"], np.mean(numpy_kl(zt["cls"], zs["cls"], 2.0)), rtol=1e-5)


def test_a_softmax_teacher_output_is_read_as_probabilities():
    teacher = two_headed(16, 1, name="teacher", softmax=True)
    student = two_headed(8, 2, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss=None, distillation_loss={"cls": "kl"}, alpha=0.0)
    result = distiller.evaluate(X, verbose=0, return_dict=True)
    probabilities, zs = predict(teacher, X)["cls"], predict(student, X)["cls"]
    np.testing.assert_allclose(
        result["distillation_loss"], np.mean(numpy_kl(np.log(probabilities), zs, 2.0)), rtol=1e-4
    )


@pytest.mark.parametrize(
    "teacher_kwargs, match",
    [
        ({"keys": ("cls", "box")}, "same output names"),
        ({"as_list": True}, "same output names"),
        ({"reg_units": 2}, "Output 'reg' has shape"),
    ],
)
def test_structures_that_do_not_match_are_refused_at_construction(teacher_kwargs, match):
    with pytest.raises(ValueError, match=match):
        kd.Distiller(
            student=two_headed(8, 2, name="student"), teacher=two_headed(16, 1, name="teacher", **teacher_kwargs)
        )


def test_subclassed_structures_that_do_not_match_are_refused_before_a_step():
    teacher, student = two_headed(16, 1, name="teacher", keys=("cls", "box")), TwoHeaded(8, name="student")
    student(X[:1])
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss=None, distillation_loss={"cls": "kl"}, alpha=0.0)
    weights = [w.copy() for w in student.get_weights()]
    with pytest.raises(ValueError, match="same output names"):
        distiller.fit(X, epochs=1, verbose=0)
    for before, after in zip(weights, student.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_a_dict_student_with_a_one_tensor_teacher_is_refused_before_any_step():
    # Each output's rows were paired with the teacher's one tensor: every
    # example was distilled toward the teacher's first one.
    inputs = keras.Input((6,))
    one_tensor = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(8)(inputs)), name="one_tensor")
    with pytest.raises(
        ValueError, match=r"returns a dict of outputs \['cls', 'reg'\] and teacher 'one_tensor' a single"
    ):
        kd.Distiller(student=two_headed(8, 2, name="student"), teacher=one_tensor)
    with pytest.raises(ValueError, match=r"keras.Model\(teacher.input, \{'name': teacher.output\}\)"):
        kd.Distiller(student=two_headed(8, 2, name="student"), teacher=one_tensor)
    subclassed = TwoHeaded(8, name="subclassed")
    subclassed(X[:1])
    distiller = kd.Distiller(student=subclassed, teacher=one_tensor)
    distiller.compile("sgd", loss=None, distillation_loss={"cls": "kl"}, alpha=0.0)
    weights = [w.copy() for w in subclassed.get_weights()]
    with pytest.raises(ValueError, match="a single tensor"):
        distiller.fit(X, epochs=1, verbose=0)
    for before, after in zip(weights, subclassed.get_weights()):
        np.testing.assert_array_equal(before, after)


def structured_distiller():
    return kd.Distiller(student=two_headed(8, 2, name="student"), teacher=two_headed(16, 1, name="teacher"))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"distillation_loss": {"box": "kl"}}, ValueError, r"names outputs the models do not have: \['box'\]"),
        ({"distillation_loss": "kl"}, ValueError, "per output, a dict by output name"),
        ({"distillation_loss": None}, ValueError, "needs its distillation losses by output name"),
        ({"distillation_loss": {"reg": "kl"}}, ValueError, "a softmax over one unit is constant"),
        (
            {"distillation_loss": {"cls": "kl"}, "distillation_loss_weights": {"reg": 1.0}},
            ValueError,
            "no distillation",
        ),
        ({"distillation_loss": {"cls": "kl"}, "distillation_loss_weights": {"cls": -1.0}}, ValueError, ">= 0"),
        (
            {"distillation_loss": {"cls": ["kl", "jsd"]}, "distillation_loss_weights": {"cls": [1.0]}},
            ValueError,
            "list of 2",
        ),
        ({"distillation_loss": {"cls": "kl"}, "loss": "mse"}, ValueError, "`loss` is given per output"),
        (
            {"distillation_loss": {"cls": "kl"}, "loss": {"reg": "mse"}, "loss_weights": {"cls": 2.0}},
            ValueError,
            "no `loss`",
        ),
        ({"distillation_loss": {"cls": "kl"}, "loss": None}, ValueError, "no `loss` for any output"),
    ],
)
def test_per_output_arguments_are_checked_at_compile(kwargs, error, match):
    distiller = structured_distiller()
    kwargs = {"loss": {"cls": "sparse_categorical_crossentropy"}, **kwargs}
    with pytest.raises(error, match=match):
        distiller.compile("sgd", **kwargs)
    assert not distiller.compiled


def test_a_softmax_student_output_is_refused_at_compile():
    distiller = kd.Distiller(
        student=two_headed(8, 2, name="student", softmax=True), teacher=two_headed(16, 1, name="teacher")
    )
    with pytest.raises(ValueError, match="'cls' ends in a softmax"):
        distiller.compile("sgd", loss=None, distillation_loss={"cls": "kl"}, alpha=0.0)


def test_per_output_losses_for_a_single_output_model_are_refused():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="has one output"):
        distiller.compile(
            "sgd", loss={"student_logits": "sparse_categorical_crossentropy"}, distillation_loss={"x": "kl"}
        )


def test_missing_labels_of_an_output_are_refused_before_training():
    distiller = structured_distiller()
    distiller.compile(
        "sgd", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, distillation_loss={"cls": "kl"}
    )
    with pytest.raises(ValueError, match=r"Outputs \['reg'\] have a hard-label loss but no labels"):
        distiller.fit(X, {"cls": Y_CLASS}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="out of range|class"):
        distiller.fit(X, {"cls": Y_CLASS + 10, "reg": Y_VALUE}, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda s, t: kd.Distiller(student=s, teacher=t, teacher_top_k=2), "without teacher_classes, teacher_top_k"),
        (lambda s, t: kd.Distiller(student=s, teacher=[t, two_headed(4, 3, name="other")]), "2 teachers"),
        (lambda s, t: kd.FeatureDistiller(student=s, teacher=t, pairs=[("dense", "dense")]), "one output"),
    ],
)
def test_options_that_need_one_output_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make(two_headed(8, 2, name="student"), two_headed(16, 1, name="teacher"))


# Several weighted losses on one output.


def test_a_list_of_losses_is_their_weighted_sum(digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        "sgd",
        loss="sparse_categorical_crossentropy",
        distillation_loss=[kd.losses.SoftTargetKLDivergence(temperature=1.0), "kl", keras.losses.MeanSquaredError()],
        distillation_loss_weights=[0.5, 0.3, 0.2],
        temperature=4.0,
        alpha=0.3,
    )
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)
    zt, zs = predict(teacher, x), predict(student, x)
    expected = (
        0.5 * np.mean(numpy_kl(zt, zs, 1.0)) + 0.3 * np.mean(numpy_kl(zt, zs, 4.0)) + 0.2 * np.mean((zt - zs) ** 2)
    )
    np.testing.assert_allclose(result["distillation_loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(result["loss"], 0.3 * numpy_ce(y, zs) + 0.7 * expected, rtol=1e-5)

    # The names follow the distiller's temperature (and its schedules); an
    # object keeps the one it was built with.
    distiller.temperature = 2.0
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)
    expected = (
        0.5 * np.mean(numpy_kl(zt, zs, 1.0)) + 0.3 * np.mean(numpy_kl(zt, zs, 2.0)) + 0.2 * np.mean((zt - zs) ** 2)
    )
    np.testing.assert_allclose(result["distillation_loss"], expected, rtol=1e-5)


def test_a_list_with_a_loss_that_needs_labels(digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        "sgd", loss=None, alpha=0.0, distillation_loss=["dkd", "kl"], distillation_loss_weights=[1.0, 0.5]
    )
    alone = kd.Distiller(student=student, teacher=teacher)
    alone.compile("sgd", loss=None, alpha=0.0, distillation_loss="dkd")
    dkd = alone.evaluate(x, y, verbose=0, return_dict=True)["distillation_loss"]
    zt, zs = predict(teacher, x), predict(student, x)
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["distillation_loss"], dkd + 0.5 * np.mean(numpy_kl(zt, zs, 2.0)), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"distillation_loss": ["kl", "jsd"], "distillation_loss_weights": [1.0]}, "list of 2 numbers"),
        ({"distillation_loss": [], "distillation_loss_weights": None}, "empty list"),
        ({"distillation_loss": "kl", "distillation_loss_weights": [1.0, 2.0]}, "weighs the losses of a list"),
        (
            {"distillation_loss": ["kl", "jsd"], "distillation_loss_weights": [0, 0]},
            "Every distillation loss weight is 0",
        ),
    ],
)
def test_list_weights_are_checked(kwargs, match):
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match=match):
        distiller.compile("sgd", loss="sparse_categorical_crossentropy", **kwargs)


def test_a_regression_loss_compares_the_logits_as_they_are(digits):
    (x, y), _ = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss=None, alpha=0.0, distillation_loss=keras.losses.MeanAbsoluteError(), temperature=5.0)
    zt, zs = predict(teacher, x[:64]), predict(student, x[:64])
    result = distiller.evaluate(x[:64], verbose=0, return_dict=True)
    np.testing.assert_allclose(result["distillation_loss"], np.mean(np.abs(zt - zs)), rtol=1e-5)


# What a keras.distillation user brings along.


def test_keras_distillation_losses_are_refused_with_the_equivalent():
    from keras.distillation import FeatureDistillation
    from keras.distillation import LogitsDistillation

    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(TypeError, match=r"SoftTargetKLDivergence\(temperature=3.0\)"):
        distiller.compile("sgd", loss=None, alpha=0.0, distillation_loss=LogitsDistillation(temperature=3.0))
    with pytest.raises(TypeError, match=r"SoftTargetCrossEntropy\(temperature=4.0\)"):
        distiller.compile(
            "sgd", distillation_loss=[LogitsDistillation(temperature=4.0, loss="categorical_crossentropy")]
        )
    with pytest.raises(TypeError, match=r"FeatureDistiller\(student=student, teacher=teacher, pairs=\[\('t', 's'\)\]"):
        distiller.compile("sgd", distillation_loss=FeatureDistillation(teacher_layer_name="t", student_layer_name="s"))
    assert not distiller.compiled


def test_keras_distillation_constructor_arguments_point_to_compile():
    student, teacher = make_pair()
    with pytest.raises(TypeError, match=r"student_loss_weight -> compile\(alpha=...\)"):
        kd.Distiller(student=student, teacher=teacher, student_loss_weight=0.5)
    with pytest.raises(TypeError, match=r"distillation_losses -> compile\(distillation_loss=...\)"):
        kd.Distiller(student=student, teacher=teacher, distillation_losses=["kl"])


def test_student_loss_weight_is_alpha(digits):
    (x, y), _ = digits
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss="sparse_categorical_crossentropy", student_loss_weight=0.8)
    assert distiller.alpha == pytest.approx(0.8)
    result = distiller.evaluate(x[:64], y[:64], verbose=0, return_dict=True)
    np.testing.assert_allclose(
        result["loss"], 0.8 * result["student_loss"] + 0.2 * result["distillation_loss"], rtol=1e-5
    )
    with pytest.raises(ValueError, match="Both `alpha` and `student_loss_weight`"):
        distiller.compile("sgd", loss="sparse_categorical_crossentropy", alpha=0.5, student_loss_weight=0.8)


def test_list_outputs_metrics_read_the_labels_given_by_name():
    """A list-output student evaluated on labels for one output, by name:
    that output's metric reads them, the other's reads zeros."""
    teacher = two_headed(16, 1, as_list=True, name="teacher")
    student = two_headed(8, 2, as_list=True, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss=[None, "mse"], distillation_loss={0: "kl"}, metrics=[[], ["mae"]], alpha=0.5)
    result = distiller.evaluate(X, {"reg": Y_VALUE}, verbose=0, return_dict=True)
    zs = predict(student, X)
    np.testing.assert_allclose(result["reg_mae"], np.mean(np.abs(zs[1] - Y_VALUE)), rtol=1e-5)


def test_teacher_logits_of_several_outputs_are_a_dict_of_the_distilled_ones():
    teacher, student = two_headed(16, 1, name="teacher"), two_headed(8, 2, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss={"reg": "mse"}, distillation_loss={"cls": "kl"}, alpha=0.5)
    logits = distiller.compute_teacher_logits(X)
    assert set(logits) == {"cls"}
    np.testing.assert_allclose(ops.convert_to_numpy(logits["cls"]), predict(teacher, X)["cls"], rtol=1e-5, atol=1e-6)


class OneInAList(keras.Model):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.head = keras.layers.Dense(4)

    def call(self, inputs):
        return [self.head(self.hidden(inputs))]


def _one_in_a_list(kind, units, name):
    if kind == "subclassed":
        model = OneInAList(units, name=name)
        model(X[:1])
        return model
    inputs = keras.Input((6,))
    return keras.Model(inputs, [keras.layers.Dense(4)(keras.layers.Dense(units, activation="relu")(inputs))], name=name)


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_one_output_in_a_list_is_one_output(kind):
    """`keras.Model(inputs, [logits])`, or a `call` returning `[logits]`,
    gives a list of one tensor: it is distilled as the single output it is
    (both had raised AttributeError: 'list' object has no attribute
    'shape')."""
    keras.utils.set_random_seed(4)
    teacher, student = _one_in_a_list(kind, 16, "teacher"), _one_in_a_list(kind, 8, "student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"], alpha=0.5)
    result = distiller.evaluate(X, Y_CLASS, verbose=0, return_dict=True)
    zt, zs = (keras.tree.flatten(predict(model, X))[0] for model in (teacher, student))
    np.testing.assert_allclose(result["student_loss"], numpy_ce(Y_CLASS, zs), rtol=1e-5)
    np.testing.assert_allclose(result["distillation_loss"], np.mean(numpy_kl(zt, zs, 2.0)), rtol=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(np.argmax(zs, -1) == Y_CLASS), abs=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(distiller.compute_teacher_logits(X)), zt, rtol=1e-5, atol=1e-6)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distiller.fit(X, Y_CLASS, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(teacher_weights, teacher.get_weights()))


class TwoHeadedList(TwoHeaded):
    def call(self, inputs):
        outputs = super().call(inputs)
        return [outputs["cls"], outputs["reg"]]


def test_subclassed_models_fed_by_a_generator_learn_their_structure_at_the_first_step():
    """Subclassed models and a generator: nothing to read the outputs from
    before the first step, which learns them (a dict by name, a list by
    position)."""

    def batches(labels):
        while True:
            yield X, labels

    for cls, labels in ((TwoHeaded, Y), (TwoHeadedList, (Y_CLASS, Y_VALUE))):
        keras.utils.set_random_seed(6)
        teacher, student = cls(16, name="teacher"), cls(8, name="student")
        teacher(X[:1]), student(X[:1])
        distiller = kd.Distiller(student=student, teacher=teacher)
        loss = {0: "sparse_categorical_crossentropy", 1: "mse"} if cls is TwoHeadedList else COMPILE["loss"]
        distillation = {0: "kl"} if cls is TwoHeadedList else {"cls": "kl"}
        distiller.compile("sgd", loss=loss, distillation_loss=distillation, alpha=0.5)
        result = distiller.evaluate(batches(labels), steps=1, verbose=0, return_dict=True)
        zt, zs = keras.tree.map_structure(ops.convert_to_numpy, (teacher(X), student(X)))
        if cls is TwoHeadedList:
            zt, zs = dict(zip(("cls", "reg"), zt)), dict(zip(("cls", "reg"), zs))
        hard = numpy_ce(Y_CLASS, zs["cls"]) + np.mean((zs["reg"] - Y_VALUE) ** 2)
        np.testing.assert_allclose(result["student_loss"], hard, rtol=1e-5, err_msg=cls.__name__)
        np.testing.assert_allclose(
            result["distillation_loss"], np.mean(numpy_kl(zt["cls"], zs["cls"], 2.0)), rtol=1e-5, err_msg=cls.__name__
        )


def test_labels_of_the_wrong_count_are_refused_by_name():
    teacher = two_headed(16, 1, as_list=True, name="teacher")
    student = two_headed(8, 2, as_list=True, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"], distillation_loss={"cls": "kl"})
    with pytest.raises(ValueError, match=r"are a dict by output name\. Received labels of type list for outputs"):
        distiller.evaluate(X, [Y_CLASS, Y_VALUE, Y_VALUE], verbose=0)


def test_a_torch_data_loader_is_read_like_a_generator():
    """Its first batch is read for the checks (it had been taken for data
    without labels, and refused), and the subclassed models' outputs are
    learnt from it."""
    torch = pytest.importorskip("torch")

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(X)

        def __getitem__(self, index):
            return X[index], {"cls": Y_CLASS[index], "reg": Y_VALUE[index]}

    keras.utils.set_random_seed(6)
    teacher, student = TwoHeaded(16, name="teacher"), TwoHeaded(8, name="student")
    teacher(X[:1]), student(X[:1])
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss=COMPILE["loss"], distillation_loss={"cls": "kl"}, alpha=0.5)
    loader = torch.utils.data.DataLoader(Pairs(), batch_size=len(X))
    result = distiller.evaluate(loader, verbose=0, return_dict=True)
    zt, zs = predict(teacher, X), predict(student, X)
    hard = numpy_ce(Y_CLASS, zs["cls"]) + np.mean((zs["reg"] - Y_VALUE) ** 2)
    np.testing.assert_allclose(result["student_loss"], hard, rtol=1e-5)
    np.testing.assert_allclose(result["distillation_loss"], np.mean(numpy_kl(zt["cls"], zs["cls"], 2.0)), rtol=1e-5)


def test_a_custom_loop_calling_compute_loss_learns_the_structure_at_its_first_call():
    """Nothing was checked before (no fit): compute_loss itself learns the
    subclassed models' outputs, as a custom training loop needs."""
    keras.utils.set_random_seed(6)
    teacher, student = TwoHeaded(16, name="teacher"), TwoHeaded(8, name="student")
    teacher(X[:1]), student(X[:1])
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("sgd", loss=COMPILE["loss"], distillation_loss={"cls": "kl"}, alpha=0.5)
    loss = distiller.compute_loss(X, Y, distiller(X))
    zt, zs = predict(teacher, X), predict(student, X)
    hard = numpy_ce(Y_CLASS, zs["cls"]) + np.mean((zs["reg"] - Y_VALUE) ** 2)
    np.testing.assert_allclose(
        float(ops.convert_to_numpy(loss)), 0.5 * hard + 0.5 * np.mean(numpy_kl(zt["cls"], zs["cls"], 2.0)), rtol=1e-5
    )
