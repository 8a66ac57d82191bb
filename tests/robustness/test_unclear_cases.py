"""9. The newer surfaces refuse what they cannot use, before any work, with
what was passed and the fix: issue 25's unclear cases (raw errors from deep
inside Keras or a backend, or nonsense accepted silently). The export cases
are in tests/test_export.py, the command line's in test_command_line.py."""

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import VOCABULARY
from tests.conftest import causal_lm
from tests.conftest import make_mlp
from tests.conftest import make_pair
from tests.conftest import token_batch

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 64)).astype("float32")
Y = RNG.integers(0, 10, 64)


def compiled():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("adam", "sparse_categorical_crossentropy")
    return distiller, student


def unchanged(model, before):
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_precompute_refuses_no_examples_and_several_outputs():
    _, teacher = make_pair()
    with pytest.raises(ValueError, match="no examples"):
        kd.precompute_teacher_outputs(teacher, X[:0])
    inputs = keras.Input((64,))
    several = keras.Model(inputs, {"a": keras.layers.Dense(10)(inputs)})
    with pytest.raises(ValueError, match=r"caches one output per example; the teacher .* a dict of outputs \['a'\]"):
        kd.precompute_teacher_outputs(several, X)


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_no_examples_are_refused_before_keras_starts(method):
    distiller, student = compiled()
    with pytest.raises(ValueError, match=r"Distiller.fit\(\)/evaluate\(\) got inputs with no examples"):
        getattr(distiller, method)(X[:0], Y[:0], verbose=0)
    tf = pytest.importorskip("tensorflow")
    empty = tf.data.Dataset.from_tensor_slices((X[:0], Y[:0])).batch(8)
    with pytest.raises(ValueError, match="a dataset that yields no batch"):
        getattr(distiller, method)(empty, verbose=0)


def test_the_checks_read_a_dataset_s_first_batch_once():
    # A pipeline may run a generator or fill a shuffle buffer for its first
    # batch: the checks before fit read it once, not once per check.
    tf = pytest.importorskip("tensorflow")
    reads = []

    def examples():
        reads.append(1)
        yield from zip(X, Y)

    signature = (tf.TensorSpec(X.shape[1:], "float32"), tf.TensorSpec((), Y.dtype))
    dataset = tf.data.Dataset.from_generator(examples, output_signature=signature).batch(8)
    distiller, _ = compiled()
    distiller._check_data(dataset, None)
    assert len(reads) == 1
    learner = kd.MutualLearner([make_mlp(8, name="a"), make_mlp(8, name="b")])
    learner.compile("adam", "sparse_categorical_crossentropy")
    learner._check_data(dataset, None)
    assert len(reads) == 2
    # Nothing kept after the checks: a second call reads again.
    distiller._check_data(dataset, None)
    assert len(reads) == 3


@pytest.mark.parametrize("argument", ["batch_size", "validation_batch_size", "steps_per_epoch"])
def test_a_batch_size_of_zero_is_refused(argument):
    # Keras reads batch_size=0 as "not given" and trains on batches of 32.
    distiller, student = compiled()
    before = student.get_weights()
    with pytest.raises(ValueError, match=f"`{argument}` must be a positive int"):
        distiller.fit(X, Y, verbose=0, validation_data=(X, Y), **{argument: 0})
    unchanged(student, before)
    learner = kd.MutualLearner([make_mlp(8, name="a"), make_mlp(8, name="b")])
    learner.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        learner.fit(X, Y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        kd.quantize_student(student, make_pair()[1], X, Y, batch_size=0)


def test_loss_as_a_metric_is_refused_at_compile():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match=r"reports `loss`, `student_loss` and `distillation_loss` itself"):
        distiller.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy", "loss"])
    assert not distiller.compiled


@pytest.mark.parametrize("argument", ["alphas", "temperatures", "distillation_losses", "standardize", "widths"])
def test_tune_refuses_an_empty_search_before_any_trial(argument, tmp_path):
    pytest.importorskip("keras_tuner")
    _, teacher = make_pair()
    builder = (lambda width: make_mlp(width, name="candidate")) if argument == "widths" else None
    builder = builder or (lambda: make_mlp(8, name="candidate"))
    with pytest.raises(ValueError, match=f"`{argument}` lists the values to search"):
        kd.tune(
            builder,
            teacher,
            X,
            Y,
            validation_data=(X, Y),
            max_trials=2,
            epochs=1,
            directory=str(tmp_path),
            verbose=0,
            **{argument: []},
        )
    assert list(tmp_path.iterdir()) == []


def test_losses_called_directly_explain_what_they_need():
    with pytest.raises(ValueError, match=r"needs the labels: call it as loss\(\(teacher_logits, labels\)"):
        kd.losses.DecoupledKD()(X[:, :10], X[:, 10:20])
    with pytest.raises(ValueError, match="HintLoss compares features of equal shape"):
        kd.losses.HintLoss()(X[:, :10], X[:, :12])
    with pytest.raises(ValueError, match="AttentionTransfer compares feature maps of the same spatial size"):
        kd.losses.AttentionTransfer()(np.zeros((2, 4, 4, 3), "float32"), np.zeros((2, 5, 5, 3), "float32"))


@pytest.fixture(scope="module")
def language_models():
    keras.utils.set_random_seed(0)
    return causal_lm(1, 16, "teacher", dropout=0.0), causal_lm(1, 8, "student", dropout=0.0)


def out_of_vocabulary(count=16):
    x, labels, mask = token_batch(count)
    x = dict(x, token_ids=x["token_ids"].copy())
    x["token_ids"][3, 1] = VOCABULARY + 3
    return x, labels, mask


@pytest.mark.parametrize("kind", ["Distiller", "CausalLMDistiller", "OnPolicyDistiller"])
def test_token_ids_outside_the_vocabulary_are_refused(language_models, kind):
    # JAX's embedding lookup returned NaN for them: a NaN loss, then a NaN student.
    teacher, student = language_models
    x, labels, _ = out_of_vocabulary()
    if kind == "OnPolicyDistiller":
        distiller = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=1.0, seed=0)
        distiller.compile("adam")
    else:
        distiller = getattr(kd, kind)(student=student, teacher=teacher)
        distiller.compile("adam", "sparse_categorical_crossentropy")
    before = student.get_weights()
    with pytest.raises(
        ValueError, match=rf"1 token id\(s\) are outside the vocabulary of .* \(0 to 11\): \[{VOCABULARY + 3}\]"
    ):
        distiller.fit(x, labels, verbose=0)
    unchanged(student, before)


def test_generation_refuses_out_of_vocabulary_prompts_and_a_directory(language_models, tmp_path):
    teacher, _ = language_models
    x, _, mask = out_of_vocabulary()
    with pytest.raises(ValueError, match="outside the vocabulary of 'teacher'"):
        kd.generate_distillation_data(teacher, {"token_ids": x["token_ids"], "padding_mask": mask})
    x, _, mask = token_batch(4)
    for empty in ({"token_ids": x["token_ids"][:0], "padding_mask": mask[:0]}, []):
        with pytest.raises(ValueError, match="`prompts` is empty"):
            kd.generate_distillation_data(teacher, empty)
    with pytest.raises(ValueError, match="`path` is a directory"):
        kd.generate_distillation_data(teacher, {"token_ids": x["token_ids"], "padding_mask": mask}, path=str(tmp_path))
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / f"{tmp_path.name}.npz").exists()


def test_prompts_that_fill_the_sequence_are_refused(language_models):
    teacher, student = language_models
    x, labels, mask = token_batch(16)
    distiller = kd.OnPolicyDistiller(student=student, teacher=teacher, lmbda=1.0, seed=0)
    distiller.compile("adam")
    with pytest.raises(ValueError, match="None of the 16 rows has a position to learn"):
        distiller.fit(x, labels, sample_weight=np.zeros_like(mask, "float32"), verbose=0)
    # Such rows among others weigh 0, as in every distiller (a corpus's
    # short windows).
    weights = mask.astype("float32")
    weights[[2, 5]] = 0.0
    history = distiller.fit(x, labels, sample_weight=weights, verbose=0).history
    assert np.isfinite(history["loss"][0])
