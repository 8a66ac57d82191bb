import keras
import numpy as np
import pytest

import keras_distill as kd

BACKEND = keras.backend.backend()


@pytest.fixture(scope="session", autouse=True)
def _teacher_store(tmp_path_factory):
    """Trained teachers go to a directory of this test session, not to the
    user's Keras cache: the suite trains them once and reuses them."""
    import os

    os.environ["KERAS_DISTILL_TEACHERS"] = str(tmp_path_factory.mktemp("teachers"))
    yield


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def digits():
    """Flattened, normalized 8x8 digits: (x_train, y_train), (x_test, y_test)."""
    (x_train, y_train), (x_test, y_test) = kd.datasets.load_digits(normalize=True)
    return (
        (x_train.reshape(len(x_train), -1), y_train),
        (x_test.reshape(len(x_test), -1), y_test),
    )


def make_mlp(units=16, *, name, classes=10, input_dim=64, softmax=False, **dense_kwargs):
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(units, activation="relu", name=f"{name}_hidden", **dense_kwargs),
            keras.layers.Dense(classes, activation="softmax" if softmax else None, name=f"{name}_logits"),
        ],
        name=name,
    )


def make_pair(teacher_units=32, student_units=8):
    return make_mlp(student_units, name="student"), make_mlp(teacher_units, name="teacher")


def log_softmax(z, axis=-1):
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def numpy_kl(teacher_logits, student_logits, temperature):
    """T^2 * KL(p_t || p_s) per example, in float64."""
    log_p_t = log_softmax(np.asarray(teacher_logits, np.float64) / temperature)
    log_p_s = log_softmax(np.asarray(student_logits, np.float64) / temperature)
    return temperature**2 * np.sum(np.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)


def numpy_dkd(teacher, student, labels, alpha, beta, temperature):
    """The authors' formulation (mdistiller's dkd_loss), per example, in float64."""
    target = np.eye(teacher.shape[-1])[labels]
    p_t = np.exp(log_softmax(np.float64(teacher) / temperature))
    p_s = np.exp(log_softmax(np.float64(student) / temperature))
    b_t = np.stack([(p_t * target).sum(-1), (p_t * (1 - target)).sum(-1)], -1)
    b_s = np.stack([(p_s * target).sum(-1), (p_s * (1 - target)).sum(-1)], -1)
    tckd = (b_t * np.log(b_t / b_s)).sum(-1)
    log_hat_t = log_softmax(np.float64(teacher) / temperature - 1000.0 * target)
    log_hat_s = log_softmax(np.float64(student) / temperature - 1000.0 * target)
    nckd = np.where(target > 0, 0.0, np.exp(log_hat_t) * (log_hat_t - log_hat_s)).sum(-1)
    return temperature**2 * (alpha * tckd + beta * nckd)


def numpy_sparse_ce(labels, logits):
    return -log_softmax(logits)[np.arange(len(labels)), labels]


def make_cnn(name, filters=(8, 8), *, batch_norm=False):
    """A small channels-last CNN for 8x8x1 digits, layers `{name}_conv{i}`."""
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for index, count in enumerate(filters, start=1):
        x = keras.layers.Conv2D(count, 3, padding="same", activation="relu", name=f"{name}_conv{index}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.5, name=f"{name}_bn{index}")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name=f"{name}_logits")(x), name=name)


@pytest.fixture(scope="session")
def digit_images(digits):
    """The digits as (n, 8, 8, 1) images."""
    (x_train, y_train), (x_test, y_test) = digits
    return (x_train.reshape(-1, 8, 8, 1), y_train), (x_test.reshape(-1, 8, 8, 1), y_test)


# Token-level (sequence) models and data, keras-hub style.
VOCABULARY, LENGTH = 12, 6


def token_model(width, name):
    """Logits per token from keras-hub style inputs; the padding mask is an
    input the model ignores, so padded positions get real logits."""
    token_ids = keras.Input((LENGTH,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((LENGTH,), dtype="bool", name="padding_mask")
    hidden = keras.layers.Embedding(VOCABULARY, width, name=f"{name}_embedding")(token_ids)
    hidden = keras.layers.Dense(width, activation="tanh", name=f"{name}_hidden")(hidden)
    logits = keras.layers.Dense(
        VOCABULARY, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0), name=f"{name}_logits"
    )(hidden)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, logits, name=name)


def causal_lm(layers, width, name, vocabulary=VOCABULARY, dropout=0.1, max_length=16):
    """A keras-hub GPT-2 task model on pre-tokenized inputs."""
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary,
        num_layers=layers,
        num_heads=2,
        hidden_dim=width,
        intermediate_dim=2 * width,
        max_sequence_length=max_length,
        dropout=dropout,
        name=f"{name}_backbone",
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None, name=name)


def token_batch(count=8, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(0, VOCABULARY, (count, LENGTH)).astype("int32")
    lengths = rng.integers(2, LENGTH + 1, count)
    mask = np.arange(LENGTH)[None, :] < lengths[:, None]
    labels = rng.integers(0, VOCABULARY, (count, LENGTH))
    return {"token_ids": token_ids, "padding_mask": mask}, labels, mask


def masked_mean(values, mask):
    return float(np.sum(values * mask) / np.sum(mask))


def numpy_top_k_kl(teacher_logits, student_logits, k, temperature):
    log_p = log_softmax(teacher_logits)
    order = np.argsort(-log_p, axis=-1)[..., :k]
    top = np.take_along_axis(log_p, order, -1)
    rest = 1 - np.exp(top).sum(-1)
    p = np.exp(log_softmax(top / temperature)) * (1 - rest)[..., None]
    q_all = np.exp(log_softmax(np.float64(student_logits) / temperature))
    q = np.take_along_axis(q_all, order, -1)
    q_rest = 1 - q.sum(-1)
    return temperature**2 * (np.sum(p * np.log(p / q), -1) + rest * np.log(rest / q_rest))


def trl_top_k(teacher_logits, student_logits, k, beta):
    """TRL's top-k-plus-tail divergence (trl/experimental/iw_opd:
    `_add_tail_bucket`, then `_jsd_divergence` with its beta: 0 forward KL,
    1 reverse KL), in NumPy, on the teacher's top k, at temperature 1."""
    teacher, student = log_softmax(teacher_logits), log_softmax(student_logits)
    support = np.argsort(-teacher, axis=-1)[..., :k]

    def add_tail(log_probs):
        log_sum = np.minimum(np.log(np.exp(log_probs).sum(-1, keepdims=True)), -1e-7)
        return np.concatenate([log_probs, np.log(-np.expm1(log_sum))], axis=-1)

    p = add_tail(np.take_along_axis(teacher, support, -1))
    q = add_tail(np.take_along_axis(student, support, -1))
    if beta == 0:
        return (np.exp(p) * (p - q)).sum(-1)
    if beta == 1:
        return (np.exp(q) * (q - p)).sum(-1)
    m = np.log(beta * np.exp(p) + (1 - beta) * np.exp(q))
    return beta * (np.exp(p) * (p - m)).sum(-1) + (1 - beta) * (np.exp(q) * (q - m)).sum(-1)
