"""10. Issue 33's unclear cases: each was a raw error from deep inside Keras, a
backend or keras-hub, a message that did not fit its cause, or nonsense
accepted silently. Each is now refused before any work, with what was
passed and the fix, or does what a Keras user expects."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_distill as kd
from keras_distill.export import export
from tests.conftest import BACKEND
from tests.conftest import VOCABULARY
from tests.conftest import causal_lm
from tests.conftest import make_mlp
from tests.conftest import make_pair
from tests.conftest import token_batch

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 64)).astype("float32")
Y = RNG.integers(0, 10, 64)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def unchanged(model, before):
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# Export.


def two_inputs():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    return keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])), name="two_inputs")


def dict_outputs():
    inputs = keras.Input((64,))
    return keras.Model(inputs, {"cls": keras.layers.Dense(3)(inputs), "box": keras.layers.Dense(4)(inputs)})


@pytest.mark.parametrize(
    "make, error, match",
    [
        (two_inputs, ValueError, r"models of one input; 'two_inputs' has 2 \(a, b\).*model.export"),
        (dict_outputs, ValueError, r"one output tensor.*a dict of outputs \['cls', 'box'\].*model.output\['cls'\]"),
        (
            lambda: kd.Distiller(student=make_mlp(4, name="s"), teacher=make_mlp(8, name="t")),
            TypeError,
            r"a Distiller, which trains models but is not one to serve.*Export distiller.student",
        ),
    ],
)
def test_export_refuses_what_it_cannot_check_with_the_fix(tmp_path, make, error, match):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    with pytest.raises(error, match=match):
        export(make(), os.path.join(tmp_path, "model"), format="onnx")
    assert os.listdir(tmp_path) == []


def test_export_creates_missing_directories(tmp_path):
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    report = export(make_mlp(8, name="student"), os.path.join(tmp_path, "a", "b", "student"), format="onnx")
    assert os.path.isfile(os.path.join(tmp_path, "a", "b", "student.onnx")) and report.max_difference < 1e-4


@keras.saving.register_keras_serializable(package="issue_33")
class Doubled(keras.layers.Layer):
    def call(self, inputs):
        return 2.0 * inputs


def test_a_registered_custom_layer_exports_through_the_tensorflow_process(tmp_path):
    # The TensorFlow-backend process that exports for JAX and PyTorch
    # imports the module that registered the class (this one).
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install keras-distill[export]")
    model = keras.Sequential([keras.Input((64,)), Doubled(), keras.layers.Dense(3)], name="custom")
    report = export(model, os.path.join(tmp_path, "custom"), format="litert", latency_runs=2)
    assert report.max_difference <= report.tolerance
    assert report.via_tensorflow == (BACKEND != "tensorflow")


def test_a_custom_class_of_a_script_names_why_it_cannot_be_exported(tmp_path):
    if BACKEND == "tensorflow":
        pytest.skip("TensorFlow exports natively, in this process")
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install keras-distill[export]")
    script = (
        "import keras, sys\n"
        "from keras_distill.export import export\n"
        "@keras.saving.register_keras_serializable(package='script')\n"
        "class Doubled(keras.layers.Layer):\n"
        "    def call(self, inputs):\n"
        "        return 2.0 * inputs\n"
        "model = keras.Sequential([keras.Input((4,)), Doubled(), keras.layers.Dense(3)])\n"
        "try:\n"
        "    export(model, sys.argv[1], format='litert')\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, os.path.join(tmp_path, "model")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": BACKEND},
    )
    assert "classes defined in __main__" in result.stdout and "__main__.Doubled" in result.stdout, result.stdout


# tune.


def teacher_for_tuning(digits):
    (x, y), _ = digits
    teacher = make_mlp(32, name="teacher")
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x[:600], y[:600], epochs=3, verbose=0)
    return teacher


def test_tune_minimizes_a_loss_objective(digits, tmp_path):
    pytest.importorskip("keras_tuner")
    (x, y), _ = digits
    result = kd.tune(
        lambda: make_mlp(8, name="candidate"),
        teacher_for_tuning(digits),
        x[:400],
        y[:400],
        validation_data=(x[400:600], y[400:600]),
        objective="val_student_loss",
        max_trials=3,
        epochs=2,
        batch_size=64,
        directory=str(tmp_path),
        verbose=0,
    )
    scores = [row["score"] for row in result.trials if row["score"] is not None]
    assert scores == sorted(scores) and len(scores) == 3
    assert result.best["score"] == min(scores)


def test_tune_refuses_a_dataset_with_the_fix(digits, tmp_path):
    pytest.importorskip("keras_tuner")
    tf = pytest.importorskip("tensorflow")
    (x, y), _ = digits
    dataset = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(16)
    with pytest.raises(TypeError, match=r"tune\(\) takes arrays.*as_numpy_iterator"):
        kd.tune(
            lambda: make_mlp(8, name="candidate"),
            make_mlp(8, name="teacher"),
            dataset,
            None,
            validation_data=(x[:32], y[:32]),
            directory=str(tmp_path),
        )
    with pytest.raises(ValueError, match="`direction` must be one of"):
        kd.tune(
            lambda: make_mlp(8, name="candidate"),
            make_mlp(8, name="teacher"),
            x[:64],
            y[:64],
            validation_data=(x[:32], y[:32]),
            direction="up",
            directory=str(tmp_path),
        )


# Language models.


@pytest.fixture(scope="module")
def language_models():
    keras.utils.set_random_seed(0)
    return causal_lm(1, 16, "teacher", dropout=0.0), causal_lm(1, 8, "student", dropout=0.0)


def test_sequences_longer_than_the_positions_are_refused(language_models):
    teacher, student = language_models
    long = {"token_ids": np.ones((4, 20), "int32"), "padding_mask": np.ones((4, 20), bool)}
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("adam", "sparse_categorical_crossentropy")
    before = student.get_weights()
    with pytest.raises(ValueError, match=r"20 tokens, but 'student' has positions for 16.*sequence_length=16"):
        distiller.fit(long, np.ones((4, 20), "int32"), verbose=0)
    unchanged(student, before)


def test_out_of_vocabulary_teacher_ids_with_their_own_inputs_are_refused(language_models):
    teacher, student = language_models
    x, labels, _ = token_batch(8)
    teacher_x = dict(x, token_ids=x["token_ids"].copy())
    teacher_x["token_ids"][2, 3] = VOCABULARY + 5
    distiller = kd.Distiller(student=student, teacher=teacher, separate_teacher_inputs=True)
    distiller.compile("adam", "sparse_categorical_crossentropy", distillation_loss="uld")
    with pytest.raises(ValueError, match=rf"outside the vocabulary of 'teacher' .*\[{VOCABULARY + 5}\]"):
        distiller.fit({"student": x, "teacher": teacher_x}, labels, verbose=0)


def test_generation_refuses_a_bogus_sampler_a_npz_path_without_its_suffix_and_full_prompts(language_models, tmp_path):
    teacher, _ = language_models
    x, _, mask = token_batch(4)
    prompts = {"token_ids": x["token_ids"], "padding_mask": mask}
    with pytest.raises(ValueError, match=r"`sampler` must be a keras-hub sampler.*Received: sampler='bogus'"):
        kd.generate_distillation_data(teacher, prompts, sampler="bogus")
    with pytest.raises(ValueError, match=r"NumPy would write 'data.txt' as 'data.txt.npz'.*path='data.npz'"):
        kd.generate_distillation_data(teacher, prompts, path="data.txt")
    full = {"token_ids": x["token_ids"], "padding_mask": np.ones_like(mask)}
    with pytest.raises(ValueError, match="Every prompt fills the whole sequence of 6 tokens"):
        kd.generate_distillation_data(teacher, full)
    assert list(tmp_path.iterdir()) == []


def test_an_all_zero_sample_weight_is_refused_with_a_fitting_reason():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"Every sample_weight is 0 \(of 64 examples\)") as raised:
        distiller.fit(X, Y, sample_weight=np.zeros(64), verbose=0)
    assert "prompt" not in str(raised.value)


# Losses, directly and through a distiller.


def test_dkd_without_a_hard_loss_checks_the_labels_it_reads():
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("adam", loss=None, alpha=0.0, distillation_loss="dkd")
    with pytest.raises(ValueError, match=r"DecoupledKD reads the labels as class indices.*1 are above: 12"):
        distiller.fit(X, np.where(np.arange(64) == 5, 12, Y), verbose=0)
    with pytest.raises(ValueError, match=r"not whole numbers, e\.g\. 3\.7"):
        distiller.fit(X, np.where(np.arange(64) == 5, 3.7, Y), verbose=0)
    # -1 marks an unlabeled example, as DecoupledKD documents.
    distiller.fit(X, np.where(np.arange(64) == 5, -1, Y), verbose=0)


@pytest.mark.parametrize("loss", ["decoupled_kd", "dist", "soft_target_kl_divergence", "generalized_jsd"])
def test_losses_called_directly_refuse_logits_of_two_shapes(loss):
    arguments = (X[:4, :10], X[:4, :8]) + ((Y[:4],) if loss == "decoupled_kd" else ())
    with pytest.raises(ValueError, match=rf"{loss} compares .* teacher_logits of shape \(4, 10\) and student"):
        getattr(kd.losses, loss)(*arguments)


# Elsewhere.


def test_born_again_ensemble_refuses_an_empty_choice():
    born = kd.BornAgain(lambda generation: make_mlp(8, name=f"g{generation}"), generations=2)
    born.compile("adam", "sparse_categorical_crossentropy")
    born.fit(X, Y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"`generations` lists the generations to average.*Received: generations=\[\]"):
        born.ensemble(generations=[])
    with pytest.raises(ValueError, match="generations"):
        born.ensemble(generations=[5])
    assert len(born.ensemble(generations=[1]).layers) > 0


class Probabilities(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(10)

    def call(self, inputs):
        return keras.ops.softmax(self.dense(inputs))


def test_a_subclassed_teacher_returning_probabilities_is_named():
    teacher = Probabilities(name="probabilities")
    teacher(X[:1])
    student = make_mlp(8, name="student")
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"'probabilities' is a subclassed model.*teacher_output_kind='probabilities'"):
        distiller.fit(X, Y, verbose=0)
    said = kd.Distiller(student=student, teacher=teacher, teacher_output_kind="probabilities")
    said.compile("adam", "sparse_categorical_crossentropy")
    said.fit(X, Y, verbose=0)


def test_the_renamed_teacher_outputs_argument_names_its_new_spelling():
    student, teacher = make_pair()
    with pytest.raises(TypeError, match=r"renamed `teacher_output_kind`.*teacher_output_kind='logits'"):
        kd.Distiller(student=student, teacher=teacher, teacher_outputs="logits")
    config = kd.Distiller(student=student, teacher=teacher).get_config()
    config["teacher_outputs"] = config.pop("teacher_output_kind")  # a file saved before the rename
    assert kd.Distiller.from_config(config).teacher_output_kind == "logits"


def test_the_command_line_refuses_fractional_labels(tmp_path):
    student, teacher = make_pair()
    teacher.save(tmp_path / "teacher.keras")
    student.save(tmp_path / "student.keras")
    y = (np.arange(64) % 10).astype("float32")
    y[7] = 3.7
    np.savez(tmp_path / "data.npz", x_train=X, y_train=y, x_test=X[:8], y_test=np.arange(8))
    command = [sys.executable, "-m", "keras_distill", "distill", "--teacher", str(tmp_path / "teacher.keras")]
    command += ["--student", str(tmp_path / "student.keras"), "--data", str(tmp_path / "data.npz")]
    command += ["--output", str(tmp_path / "out"), "--backend", BACKEND]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2 and "y_train holds 1 label(s) that are not whole class indices, e.g. 3.7" in (
        result.stderr
    ), result.stderr[-1500:]
    assert "Traceback" not in result.stderr


def test_reproductions_refuse_zero_seeds_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "reproductions", "hinton", "--seeds", "0", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "--seeds must be a positive number" in result.stderr
    assert "Traceback" not in result.stderr
