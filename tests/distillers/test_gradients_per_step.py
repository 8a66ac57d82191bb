"""A training step of a distiller uses that step's gradients only.

On torch, Keras clears gradients with `torch.nn.Module.zero_grad()`, which
reaches only the parameters a model registers. A teacher and a student whose
variables share paths (keras-hub models always do; so do two copies of one
architecture) once left the student's parameters unregistered inside a
distiller, and its gradients added up across steps. The teachers here are
built by the students' own builders, so every path collides.
"""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import BACKEND
from tests.conftest import LENGTH
from tests.conftest import VOCABULARY
from tests.conftest import causal_lm
from tests.conftest import make_cnn
from tests.conftest import make_mlp

STEPS = 3
LEARNING_RATE = 0.1
SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def functional_mlp(name, units=8):
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, name=f"{name}_logits")(hidden), name=name)


class SubclassedMLP(keras.Model):
    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(units, activation="relu", name="hidden")
        self.logits = keras.layers.Dense(10, name="logits")

    def call(self, inputs):
        return self.logits(self.hidden(inputs))


def subclassed_mlp(name):
    model = SubclassedMLP(name=name)
    model(np.zeros((1, 64), "float32"))
    return model


def lm(name):
    return causal_lm(1, 8, name, dropout=0.0)


def tabular_batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 64)).astype("float32"), rng.integers(0, 10, 16)


def image_batch():
    x, y = tabular_batch()
    return x.reshape(16, 8, 8, 1), y


def token_batch():
    # Full-length sequences: the distillers' mean over real tokens is then
    # Keras' mean over all of them.
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(0, VOCABULARY, (8, LENGTH)).astype("int32"),
        "padding_mask": np.ones((8, LENGTH), bool),
    }
    return x, rng.integers(0, VOCABULARY, (8, LENGTH))


# name -> (model builder, batch)
KINDS = {
    "sequential": (lambda name: make_mlp(8, name=name), tabular_batch),
    "functional": (functional_mlp, tabular_batch),
    "subclassed": (subclassed_mlp, tabular_batch),
    "batch_norm": (lambda name: make_cnn(name, batch_norm=True), image_batch),
    "keras_hub": (lm, token_batch),
}


def twins(build):
    """Two models of one architecture and the same weights (and paths)."""
    first, second = build("model"), build("model")
    second.set_weights(first.get_weights())
    return first, second


def trained_alone(student, x, y):
    student.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=SCCE)
    student.fit(x, y, batch_size=len(y), epochs=STEPS, shuffle=False, verbose=0)
    return student.get_weights()


def assert_same(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


HARD_LOSS_ONLY = [
    (kind, distiller)
    for kind in KINDS
    for distiller in ("Distiller", "FeatureDistiller", "CausalLMDistiller")
    if not (distiller == "FeatureDistiller" and kind in ("subclassed", "keras_hub"))
    and not (distiller == "CausalLMDistiller" and kind != "keras_hub")
]


@pytest.mark.parametrize("kind, distiller_name", HARD_LOSS_ONLY)
def test_hard_loss_only_equals_plain_fit(kind, distiller_name):
    build, batch = KINDS[kind]
    x, y = batch()
    alone, student = twins(build)
    teacher = build("model")
    expected = trained_alone(alone, x, y)

    kwargs = {"chunk_size": 2} if distiller_name == "CausalLMDistiller" else {}
    if distiller_name == "FeatureDistiller":
        kwargs = {"pairs": [("model_logits", "model_logits")], "projections": "auto"}
    distiller = getattr(kd, distiller_name)(student=student, teacher=teacher, **kwargs)
    compile_kwargs = {"feature_weight": 0.0} if distiller_name == "FeatureDistiller" else {}
    distiller.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=SCCE, alpha=1.0, **compile_kwargs)
    before = teacher.get_weights()
    distiller.fit(x, y, batch_size=len(y), epochs=STEPS, shuffle=False, verbose=0)

    assert_same(student.get_weights(), expected)
    assert_same(teacher.get_weights(), before)
    assert not np.allclose(expected[0], build("model").get_weights()[0])


# Every distiller, with every trainable variable it owns (projections, the
# hint regressor, peers): name -> (model builder, batch, make, compile arguments, stage).
def _distiller(student, teacher):
    return kd.Distiller(student=student, teacher=teacher)


EVERY_DISTILLER = {
    "Distiller, keras-hub": (lm, token_batch, _distiller, {"loss": SCCE, "alpha": 0.5}, None),
    "Distiller, BatchNorm": (
        lambda name: make_cnn(name, batch_norm=True),
        image_batch,
        _distiller,
        {"loss": SCCE, "alpha": 0.5},
        None,
    ),
    "CausalLMDistiller": (
        lm,
        token_batch,
        lambda student, teacher: kd.CausalLMDistiller(student=student, teacher=teacher, chunk_size=2),
        {"loss": SCCE, "alpha": 0.5},
        None,
    ),
    "OnPolicyDistiller": (
        lm,
        token_batch,
        lambda student, teacher: kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=0.0),
        {"beta": 0.5},
        None,
    ),
    "FeatureDistiller, projections": (
        lambda name: make_cnn(name, filters=(4, 6) if name == "student" else (8, 8)),
        image_batch,
        lambda student, teacher: kd.FeatureDistiller(
            student=student, teacher=teacher, pairs=[("teacher_conv2", "student_conv2")], projections="auto"
        ),
        {"loss": SCCE, "alpha": 0.5, "feature_weight": 1.0},
        None,
    ),
    "HintDistiller, regressor": (
        lambda name: make_cnn(name, filters=(4, 6) if name == "student" else (8, 8)),
        image_batch,
        lambda student, teacher: kd.HintDistiller(
            student=student, teacher=teacher, hint_layer="teacher_conv2", guided_layer="student_conv2"
        ),
        {"loss": SCCE, "alpha": 0.5, "hint_weight": 0.5},
        None,
    ),
    "HintDistiller, fit_hints": (
        lambda name: make_cnn(name, filters=(4, 6) if name == "student" else (8, 8)),
        image_batch,
        lambda student, teacher: kd.HintDistiller(
            student=student, teacher=teacher, hint_layer="teacher_conv2", guided_layer="student_conv2"
        ),
        {"loss": SCCE, "alpha": 0.5},
        "fit_hints",
    ),
    "FSPDistiller, fit_features": (
        lambda name: make_cnn(name),
        image_batch,
        lambda student, teacher: kd.FSPDistiller(
            student=student,
            teacher=teacher,
            pairs=[(("teacher_conv1", "teacher_conv2"), ("student_conv1", "student_conv2"))],
        ),
        {"loss": SCCE, "alpha": 0.5},
        "fit_features",
    ),
    "MutualLearner, keras-hub peers": (
        lm,
        token_batch,
        lambda first, second: kd.MutualLearner([first, second]),
        {"loss": SCCE},
        None,
    ),
}


def _build(case, seed):
    build, batch, make, compile_kwargs, stage = EVERY_DISTILLER[case]
    keras.utils.set_random_seed(seed)
    distiller = make(build("student"), build("teacher"))
    distiller.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), **compile_kwargs)
    return distiller


def _one_step(distiller, case):
    x, y = EVERY_DISTILLER[case][1]()
    stage = EVERY_DISTILLER[case][4]
    if stage is None:
        distiller.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    else:
        getattr(distiller, stage)(
            x, batch_size=len(y), epochs=1, shuffle=False, verbose=0, optimizer=keras.optimizers.SGD(LEARNING_RATE)
        )


@pytest.mark.parametrize("case", list(EVERY_DISTILLER))
def test_each_step_uses_its_own_gradients(case):
    """STEPS steps of one distiller equal STEPS distillers, each built
    afresh from the previous step's weights and trained one step."""
    distiller = _build(case, seed=0)
    start = distiller.get_weights()
    trajectory = []
    for _ in range(STEPS):
        _one_step(distiller, case)
        trajectory.append(distiller.get_weights())

    weights = start
    for expected in trajectory:
        fresh = _build(case, seed=1)
        fresh.set_weights(weights)
        _one_step(fresh, case)
        weights = fresh.get_weights()
        assert_same(weights, expected)
    assert not all(np.array_equal(a, b) for a, b in zip(start, trajectory[-1]))


@pytest.mark.skipif(BACKEND != "torch", reason="torch parameters")
def test_torch_parameters_reach_every_variable_once():
    teacher, student = lm("teacher"), lm("student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    parameters = list(distiller.parameters())
    expected = {id(v.value) for v in distiller.variables}
    assert {id(p) for p in parameters} == expected
    assert len(parameters) == len(expected)
