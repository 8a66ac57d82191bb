"""What every loss class promises, checked on each of them: its documented
defaults, its `reduction` / `name` / `dtype`, per-token (3-D) inputs, and
half-precision inputs.

Written from the mutation run of `make mutation` (docs/development.md):
each test here kills a family of survivors that the per-loss tests let
through because they only used 2-D float32 inputs at default settings.
"""

import ast
import re

import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from keras_distill.losses.decoupled_kd import decoupled_kd_per_example

RNG = np.random.default_rng(7)
LOGITS = {"teacher": (RNG.normal(size=(4, 3, 10)) * 3).astype("float32")}
LOGITS["student"] = (RNG.normal(size=(4, 3, 10)) * 3).astype("float32")
FEATURES = RNG.normal(size=(6, 8)).astype("float32"), RNG.normal(size=(6, 8)).astype("float32")
MAPS = RNG.normal(size=(2, 4, 4, 3)).astype("float32"), RNG.normal(size=(2, 4, 4, 5)).astype("float32")

# The defaults each class documents (the papers' settings).
DEFAULTS = {
    kd.losses.AttentionTransfer: {"name": "attention_transfer", "p": 2, "data_format": "channels_last"},
    kd.losses.CosineDistance: {"name": "cosine_distance"},
    kd.losses.DIST: {"name": "dist", "temperature": 1.0, "beta": 1.0, "gamma": 1.0},
    kd.losses.DecoupledKD: {"name": "decoupled_kd", "temperature": 4.0, "alpha": 1.0, "beta": 8.0},
    kd.losses.FSPLoss: {"name": "fsp_loss", "data_format": "channels_last"},
    kd.losses.GeneralizedJSD: {"name": "generalized_jsd", "temperature": 1.0, "beta": 0.5},
    kd.losses.HintLoss: {"name": "hint_loss"},
    kd.losses.LogitMatching: {"name": "logit_matching", "center": True},
    kd.losses.RKDAngle: {"name": "rkd_angle", "delta": 1.0},
    kd.losses.RKDDistance: {"name": "rkd_distance", "delta": 1.0},
    kd.losses.SoftTargetCrossEntropy: {"name": "soft_target_cross_entropy", "temperature": 1.0},
    kd.losses.SoftTargetKLDivergence: {"name": "soft_target_kl_divergence", "temperature": 1.0},
    kd.losses.SoftTargetReverseKL: {"name": "soft_target_reverse_kl", "temperature": 1.0},
    kd.losses.TopKDivergence: {"name": "top_k_divergence", "divergence": "kl", "beta": 0.5, "temperature": 1.0},
    kd.losses.TopKKLDivergence: {"name": "top_k_kl_divergence", "temperature": 1.0},
    kd.losses.UniversalLogitDistillation: {"name": "universal_logit_distillation", "temperature": 1.0},
}


def test_every_public_loss_class_is_pinned():
    public = {
        obj
        for obj in vars(kd.losses).values()
        if isinstance(obj, type) and issubclass(obj, keras.losses.Loss) and obj.__module__.startswith("keras_distill")
    }
    # Bases and wrappers need arguments to exist; the rest are pinned above.
    assert public - set(DEFAULTS) == {
        kd.losses.FeatureLoss,
        kd.losses.FunctionLoss,
        kd.losses.LogitLoss,
        kd.losses.SoftenedLoss,
        kd.losses.WeightedSum,
    }


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda cls: cls.__name__)
def test_defaults_are_the_documented_ones(cls):
    config = cls().get_config()
    assert config.pop("reduction") == "sum_over_batch_size"
    assert config == DEFAULTS[cls]


def _inputs(cls):
    """(y_true, y_pred) for one call of `cls`, 2-D where it takes logits."""
    teacher, student = LOGITS["teacher"][:, 0], LOGITS["student"][:, 0]
    if cls is kd.losses.DecoupledKD:
        return (teacher, np.arange(4) % 10), student
    if cls in (kd.losses.TopKDivergence, kd.losses.TopKKLDivergence):
        return kd.losses.pack_top_k(*kd.losses.top_k_teacher(teacher, 3)), student
    if cls in (kd.losses.HintLoss, kd.losses.CosineDistance, kd.losses.RKDAngle, kd.losses.RKDDistance):
        return FEATURES
    if cls is kd.losses.AttentionTransfer:
        return MAPS[0], MAPS[1][..., :3]
    if cls is kd.losses.FSPLoss:
        return MAPS, (MAPS[0] * 0.5, MAPS[1][:, ::-1])
    return teacher, student


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda cls: cls.__name__)
def test_reduction_name_and_dtype_reach_keras(cls):
    y_true, y_pred = _inputs(cls)
    summed = cls(reduction="sum", name="mine", dtype="float16")
    assert summed.get_config()["reduction"] == "sum" and summed.get_config()["name"] == "mine"
    assert summed.name == "mine"
    per_example = ops.convert_to_numpy(cls(reduction="none")(y_true, y_pred))
    value = summed(y_true, y_pred)
    assert keras.backend.standardize_dtype(value.dtype) == "float16"
    np.testing.assert_allclose(float(value), per_example.sum(), rtol=2e-3)
    restored = cls.from_config(summed.get_config())
    assert restored.reduction == "sum" and restored.name == "mine"


# A value other than the default for each setting (a divergence, a
# boolean, a power, a margin).
OTHER_VALUES = {"temperature": 3.0, "beta": 0.3, "gamma": 2.0, "alpha": 2.0, "p": 3, "delta": 0.5}
OTHER_VALUES.update({"center": False, "divergence": "jsd"})


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda cls: cls.__name__)
def test_every_setting_round_trips_and_changes_the_value(cls):
    settings = {key: OTHER_VALUES[key] for key in DEFAULTS[cls] if key in OTHER_VALUES}
    if cls is kd.losses.DecoupledKD:
        settings["beta"] = 4.0  # DKD's beta weighs a term: any positive number
    y_true, y_pred = _inputs(cls)
    loss = cls(**settings)
    restored = cls.from_config(loss.get_config())
    assert restored.get_config() == loss.get_config()
    assert {key: loss.get_config()[key] for key in settings} == settings
    value = float(loss(y_true, y_pred))
    np.testing.assert_allclose(float(restored(y_true, y_pred)), value, rtol=1e-6)
    # Each setting reaches the computation: alone at another value, it
    # changes the loss.
    for key in settings:
        # TopKDivergence's beta weighs the JSD only.
        base = {"divergence": "jsd"} if cls is kd.losses.TopKDivergence and key == "beta" else {}
        default = float(cls(**base, **{key: DEFAULTS[cls][key]})(y_true, y_pred))
        alone = float(cls(**base, **{key: settings[key]})(y_true, y_pred))
        assert abs(alone - default) > 1e-6 * max(1.0, abs(default)), key


LOGIT_LOSSES = [
    kd.losses.SoftTargetKLDivergence(temperature=2.0),
    kd.losses.SoftTargetCrossEntropy(temperature=2.0),
    kd.losses.SoftTargetReverseKL(temperature=2.0),
    kd.losses.GeneralizedJSD(beta=0.3, temperature=2.0),
    kd.losses.DIST(beta=1.0, gamma=0.0, temperature=2.0),
    kd.losses.LogitMatching(),
    kd.losses.LogitMatching(center=False),
    kd.losses.UniversalLogitDistillation(temperature=2.0),
]


@pytest.mark.parametrize("loss", LOGIT_LOSSES, ids=lambda loss: f"{type(loss).__name__}")
def test_per_token_logits_are_rows(loss):
    """(batch, tokens, classes) is batch x tokens rows of classes: every
    reduction over classes is over the last axis, not the second."""
    loss = type(loss).from_config({**loss.get_config(), "reduction": "none"})
    teacher, student = LOGITS["teacher"], LOGITS["student"]
    per_token = ops.convert_to_numpy(loss(teacher, student))
    rows = ops.convert_to_numpy(loss(teacher.reshape(12, 10), student.reshape(12, 10)))
    assert per_token.shape == (4, 3)
    np.testing.assert_allclose(per_token.reshape(12), rows, rtol=1e-5, atol=1e-6)


def test_standardized_logits_per_token_are_rows():
    logits = LOGITS["teacher"]
    per_token = ops.convert_to_numpy(kd.losses.standardize_logits(logits))
    rows = ops.convert_to_numpy(kd.losses.standardize_logits(logits.reshape(12, 10)))
    np.testing.assert_allclose(per_token.reshape(12, 10), rows, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(per_token.std(-1, ddof=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("loss", LOGIT_LOSSES, ids=lambda loss: f"{type(loss).__name__}")
def test_half_precision_logits_are_computed_in_float32(loss):
    """Logits in float16 (mixed precision) up to 300: the loss is computed in
    float32 and equals the float32 loss, finite (in float16 a squared
    difference of 300 is inf, and a softmax of 300 / T overflows)."""
    teacher, student = LOGITS["teacher"][:, 0] * 30, LOGITS["student"][:, 0] * 30
    expected = ops.convert_to_numpy(loss(teacher, student))
    half = ops.convert_to_numpy(loss(teacher.astype("float16"), student.astype("float16")))
    assert np.isfinite(half)
    np.testing.assert_allclose(half, expected, rtol=2e-2)


def test_half_precision_features_are_computed_in_float32():
    big = MAPS[0] * 300
    for loss, inputs in (
        (kd.losses.AttentionTransfer(), (big, big[..., :2] * 0.5)),
        (kd.losses.FSPLoss(), ((big, big[..., :2]), (big[..., :1], big[..., :2] * 0.5))),
    ):
        expected = ops.convert_to_numpy(loss(*inputs))
        half = ops.convert_to_numpy(loss(*keras.tree.map_structure(lambda x: x.astype("float16"), inputs)))
        assert np.isfinite(half), type(loss).__name__
        np.testing.assert_allclose(half, expected, rtol=2e-2, err_msg=type(loss).__name__)


@pytest.mark.parametrize("cls", [kd.losses.AttentionTransfer, kd.losses.FSPLoss])
def test_channels_first_is_channels_last_transposed(cls):
    last = cls(data_format="channels_last")
    first = cls(data_format="channels_first")
    assert first.get_config()["data_format"] == "channels_first"
    y_true, y_pred = _inputs(cls)

    def transposed(x):
        return keras.tree.map_structure(lambda a: np.moveaxis(a, -1, 1), x)

    np.testing.assert_allclose(
        ops.convert_to_numpy(first(transposed(y_true), transposed(y_pred))),
        ops.convert_to_numpy(last(y_true, y_pred)),
        rtol=1e-5,
    )
    restored = cls.from_config(first.get_config())
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(transposed(y_true), transposed(y_pred))),
        ops.convert_to_numpy(last(y_true, y_pred)),
        rtol=1e-5,
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_fsp_pools_whichever_map_is_larger(data_format):
    """FSP of a (8, 8) map with a (4, 4) map pools the larger to 4 x 4,
    whichever of the two it is, on either data format."""
    large = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    small = RNG.normal(size=(2, 4, 4, 5)).astype("float32")
    pooled = large.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    expected_ab = np.einsum("bsm,bsn->bmn", pooled.reshape(2, 16, 3), small.reshape(2, 16, 5)) / 16
    if data_format == "channels_first":
        large, small = np.moveaxis(large, -1, 1), np.moveaxis(small, -1, 1)
    ab = ops.convert_to_numpy(kd.losses.fsp_matrix(large, small, data_format=data_format))
    ba = ops.convert_to_numpy(kd.losses.fsp_matrix(small, large, data_format=data_format))
    np.testing.assert_allclose(ab, expected_ab, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ba, np.swapaxes(expected_ab, 1, 2), rtol=1e-5, atol=1e-6)


def test_attention_and_fsp_take_one_dimensional_maps():
    """(batch, steps, channels), the output of a Conv1D, has one spatial
    axis: both losses take it as they take images."""
    a = RNG.normal(size=(2, 6, 3)).astype("float32")
    b = RNG.normal(size=(2, 6, 4)).astype("float32")
    attention = kd.losses.AttentionTransfer()
    attention.check_shapes(a.shape, b.shape)
    flat = lambda x: (x**2).mean(-1) / np.linalg.norm((x**2).mean(-1), axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(
        ops.convert_to_numpy(attention(a, b)), ((flat(a) - flat(b)) ** 2).mean(-1).mean(), rtol=1e-5
    )
    fsp = kd.losses.FSPLoss()
    fsp.check_shapes((a.shape, b.shape), (a.shape, b.shape))
    expected = np.einsum("bsm,bsn->bmn", a, b) / 6 - np.einsum("bsm,bsn->bmn", a * 0.5, b) / 6
    np.testing.assert_allclose(
        ops.convert_to_numpy(fsp((a, b), (a * 0.5, b))), (expected**2).sum(axis=(1, 2)).mean(), rtol=1e-5
    )


TEMPERATURE = ("temperature", " in [0.01, 1000]", (0.01, 1000.0), (0.0099, 1001.0))
NON_NEGATIVE_WEIGHTS = " >= 0", (0.0, 0.5), (-0.1,)
OPEN_UNIT = " strictly between 0 and 1", (0.01, 0.99), (0.0, 1.0)
# Each class's checked settings: (setting, the range the message states,
# values at its edges that are taken, values just outside it).
BOUNDS = {
    kd.losses.AttentionTransfer: [("p", " > 0", (0.5, 4), (0, -1))],
    kd.losses.DIST: [TEMPERATURE, ("beta", *NON_NEGATIVE_WEIGHTS), ("gamma", *NON_NEGATIVE_WEIGHTS)],
    kd.losses.DecoupledKD: [TEMPERATURE, ("alpha", *NON_NEGATIVE_WEIGHTS), ("beta", *NON_NEGATIVE_WEIGHTS)],
    kd.losses.GeneralizedJSD: [TEMPERATURE, ("beta", *OPEN_UNIT)],
    kd.losses.RKDAngle: [("delta", " > 0", (1e-3,), (0.0, -1.0))],
    kd.losses.RKDDistance: [("delta", " > 0", (1e-3,), (0.0, -1.0))],
    kd.losses.SoftTargetCrossEntropy: [TEMPERATURE],
    kd.losses.SoftTargetKLDivergence: [TEMPERATURE],
    kd.losses.SoftTargetReverseKL: [TEMPERATURE],
    kd.losses.TopKDivergence: [TEMPERATURE, ("beta", *OPEN_UNIT)],
    kd.losses.TopKKLDivergence: [TEMPERATURE],
    kd.losses.UniversalLogitDistillation: [TEMPERATURE],
}


def test_every_number_setting_is_bounded():
    numeric = {
        cls: {key for key, value in config.items() if type(value) in (int, float)} for cls, config in DEFAULTS.items()
    }
    assert {cls: {bound[0] for bound in bounds} for cls, bounds in BOUNDS.items()} == {
        cls: keys for cls, keys in numeric.items() if keys
    }


@pytest.mark.parametrize(
    "cls, setting, described, taken, refused",
    [(cls, *bound) for cls, bounds in BOUNDS.items() for bound in bounds],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_each_number_setting_is_taken_to_its_edges_and_refused_past_them(cls, setting, described, taken, refused):
    """A value past the edge is refused with a message naming the setting,
    the range, the value and a value that works (which is then taken)."""
    for value in taken:
        assert cls(**{setting: value}).get_config()[setting] == value
    for value in refused:
        with pytest.raises(ValueError) as error:
            cls(**{setting: value})
        message = str(error.value)
        expected = rf"`{setting}` must be a finite number{re.escape(described)}\. Received: {setting}={value!r}\. "
        match = re.match(expected + rf"Use e\.g\. {setting}=(\S+?)\.( |$)", message)
        assert match, message
        # The value shown is the paper's default (2.0 for every temperature,
        # whose defaults differ from loss to loss).
        example = ast.literal_eval(match.group(1))
        assert example == (2.0 if setting == "temperature" else DEFAULTS[cls][setting])
        assert cls(**{setting: example}).get_config()[setting] == example
    with pytest.raises(TypeError, match=rf"`{setting}` must be a number\. Received: {setting}='1'"):
        cls(**{setting: "1"})


def test_temperature_errors_say_why_the_range():
    with pytest.raises(
        ValueError, match=r"\. Outside this range float32 softmax overflows or flattens every distribution\.$"
    ):
        kd.losses.SoftTargetKLDivergence(temperature=0.0)
    with pytest.raises(
        ValueError, match=r"Use e\.g\. beta=0\.5\. beta=0\.5 is the symmetric Jensen-Shannon divergence\.$"
    ):
        kd.losses.GeneralizedJSD(beta=1.0)


def test_top_k_divergence_takes_only_its_three_divergences():
    for divergence in ("kl", "reverse_kl", "jsd"):
        assert kd.losses.TopKDivergence(divergence).divergence == divergence
    with pytest.raises(ValueError, match=r"`divergence` must be one of \('kl', 'reverse_kl', 'jsd'\)\. Received: "):
        kd.losses.TopKDivergence("kld")


TEACHER_2D, STUDENT_2D = LOGITS["teacher"][:, 0], LOGITS["student"][:, 0]
TOP_3 = kd.losses.top_k_teacher(TEACHER_2D, 3)
LABELS_2D = np.arange(4) % 10
# Each functional twin called with no options, and its class at defaults.
TWINS = {
    "dist": (lambda: kd.losses.dist(TEACHER_2D, STUDENT_2D), kd.losses.DIST),
    "decoupled_kd": (lambda: kd.losses.decoupled_kd(TEACHER_2D, STUDENT_2D, LABELS_2D), kd.losses.DecoupledKD),
    "decoupled_kd_per_example": (
        lambda: ops.mean(decoupled_kd_per_example(TEACHER_2D, STUDENT_2D, LABELS_2D)),
        kd.losses.DecoupledKD,
    ),
    "generalized_jsd": (lambda: kd.losses.generalized_jsd(TEACHER_2D, STUDENT_2D), kd.losses.GeneralizedJSD),
    "soft_target_kl_divergence": (
        lambda: kd.losses.soft_target_kl_divergence(TEACHER_2D, STUDENT_2D),
        kd.losses.SoftTargetKLDivergence,
    ),
    "soft_target_cross_entropy": (
        lambda: kd.losses.soft_target_cross_entropy(TEACHER_2D, STUDENT_2D),
        kd.losses.SoftTargetCrossEntropy,
    ),
    "soft_target_reverse_kl": (
        lambda: kd.losses.soft_target_reverse_kl(TEACHER_2D, STUDENT_2D),
        kd.losses.SoftTargetReverseKL,
    ),
    "universal_logit_distillation": (
        lambda: kd.losses.universal_logit_distillation(TEACHER_2D, STUDENT_2D),
        kd.losses.UniversalLogitDistillation,
    ),
    "logit_matching": (lambda: kd.losses.logit_matching(TEACHER_2D, STUDENT_2D), kd.losses.LogitMatching),
    "top_k_divergence": (lambda: kd.losses.top_k_divergence(*TOP_3, STUDENT_2D), kd.losses.TopKDivergence),
    "top_k_divergence_jsd": (
        lambda: kd.losses.top_k_divergence(*TOP_3, STUDENT_2D, divergence="jsd"),
        lambda: kd.losses.TopKDivergence("jsd"),
    ),
    "top_k_kl_divergence": (lambda: kd.losses.top_k_kl_divergence(*TOP_3, STUDENT_2D), kd.losses.TopKKLDivergence),
    "rkd_distance": (lambda: kd.losses.rkd_distance(*FEATURES), kd.losses.RKDDistance),
    "rkd_angle": (lambda: kd.losses.rkd_angle(*FEATURES), kd.losses.RKDAngle),
    "attention_transfer": (
        lambda: kd.losses.attention_transfer(MAPS[0], MAPS[1][..., :3]),
        kd.losses.AttentionTransfer,
    ),
}


@pytest.mark.parametrize("name", list(TWINS))
def test_functional_twins_default_to_their_classes_defaults(name):
    function, cls = TWINS[name]
    loss = cls()
    y_true, y_pred = _inputs(type(loss))
    value = ops.convert_to_numpy(ops.mean(function()))
    np.testing.assert_allclose(value, ops.convert_to_numpy(loss(y_true, y_pred)), rtol=1e-5)


def test_top_k_buckets_default_to_temperature_one():
    default = kd.losses.top_k_buckets(*TOP_3, STUDENT_2D)
    at_one = kd.losses.top_k_buckets(*TOP_3, STUDENT_2D, temperature=1.0)
    for a, b in zip(default, at_one):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda cls: cls.__name__)
def test_float32_whatever_floatx(cls):
    """Built under `keras.config.set_floatx("float16")`, a loss still casts
    its inputs to float32 (Keras would cast them to floatx) and gives the
    float32 value; `dtype=` still chooses."""
    y_true, y_pred = _inputs(cls)
    expected = ops.convert_to_numpy(cls()(y_true, y_pred))
    floatx = keras.config.floatx()
    keras.config.set_floatx("float16")
    try:
        value = cls()(y_true, y_pred)
        chosen = cls(dtype="float16")(y_true, y_pred)
    finally:
        keras.config.set_floatx(floatx)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    assert keras.backend.standardize_dtype(chosen.dtype) == "float16"
    np.testing.assert_allclose(ops.convert_to_numpy(value), expected, rtol=1e-6)


SHAPE_CHECKED = {
    "soft_target_kl_divergence": kd.losses.soft_target_kl_divergence,
    "soft_target_cross_entropy": kd.losses.soft_target_cross_entropy,
    "soft_target_reverse_kl": kd.losses.soft_target_reverse_kl,
    "generalized_jsd": kd.losses.generalized_jsd,
    "dist": kd.losses.dist,
    "decoupled_kd": lambda teacher, student: kd.losses.decoupled_kd(teacher, student, LABELS_2D),
}


@pytest.mark.parametrize("name", list(SHAPE_CHECKED))
def test_logits_of_other_shapes_are_refused_by_name(name):
    with pytest.raises(ValueError, match=rf"^{name} compares the teacher's and the student's logits class by class"):
        SHAPE_CHECKED[name](TEACHER_2D, STUDENT_2D[:, :7])


@pytest.mark.parametrize(
    "cls", [cls for cls, config in DEFAULTS.items() if "temperature" in config], ids=lambda c: c.__name__
)
def test_a_temperature_variable_is_read_and_saved_as_its_value(cls):
    """A distiller builds its losses on its own temperature variable: the
    loss reads it at each call, and its config holds the float."""
    temperature = keras.Variable(2.5, trainable=False)
    loss = cls(temperature=temperature)
    assert loss.get_config()["temperature"] == 2.5
    y_true, y_pred = _inputs(cls)
    temperature.assign(3.0)
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(y_true, y_pred)),
        ops.convert_to_numpy(cls(temperature=3.0)(y_true, y_pred)),
        rtol=1e-6,
    )
    assert loss.get_config()["temperature"] == 3.0
