"""Writes the notebooks from the cell sources below, outputs stripped.

Run `python notebooks/make_notebooks.py` after editing; the tests execute
the .ipynb files it writes.
"""

import os

import nbformat
from method_notebooks import MLP
from method_notebooks import method_notebooks
from nbformat.v4 import new_code_cell
from nbformat.v4 import new_markdown_cell
from nbformat.v4 import new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    "colab": {"provenance": []},
}

SETUP = """\
# Colab: install keras-distill (set KERAS_DISTILL_SOURCE to a wheel or git URL
# to install another build). Pick the backend before Keras is imported.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    source = os.environ.get("KERAS_DISTILL_SOURCE", "keras-distill")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
os.environ.setdefault("KERAS_BACKEND", "jax")  # or "tensorflow", "torch"

# KERAS_DISTILL_QUICK=1 runs on a small subset (the test suite sets it).
QUICK = os.environ.get("KERAS_DISTILL_QUICK") == "1"
OUTPUT = os.environ.get("KERAS_DISTILL_OUTPUT", "distill-notebook-output")
os.makedirs(OUTPUT, exist_ok=True)

import keras
import numpy as np

import keras_distill as kd

print("Keras", keras.__version__, "backend:", keras.backend.backend())"""

DATA = '''\
def load_fashion_mnist():
    """tensorflow-datasets when it can be reached, the local loader otherwise."""
    if os.environ.get("KERAS_DISTILL_OFFLINE") != "1":
        try:
            import tensorflow_datasets as tfds

            (x_train, y_train), (x_test, y_test) = tfds.as_numpy(
                tfds.load("fashion_mnist", split=["train", "test"], batch_size=-1, as_supervised=True)
            )
            print("Fashion-MNIST from tensorflow-datasets")
            return (x_train[..., 0] / 255.0, y_train), (x_test[..., 0] / 255.0, y_test)
        except Exception as error:  # offline, or tfds missing
            print(f"tensorflow-datasets unavailable ({type(error).__name__}); using the local loader")
    return kd.datasets.load_fashion_mnist(normalize=True)


(x_train, y_train), (x_test, y_test) = load_fashion_mnist()
x_train = x_train.reshape(len(x_train), -1).astype("float32")
x_test = x_test.reshape(len(x_test), -1).astype("float32")
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], y_test[:1000]
x_val, y_val = x_train[-len(x_train) // 12 :], y_train[-len(x_train) // 12 :]
x_train, y_train = x_train[: -len(x_train) // 12], y_train[: -len(x_train) // 12]
print(x_train.shape, x_val.shape, x_test.shape)'''

MODELS = (
    MLP
    + """


def compile_classifier(model):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


EPOCHS = 2 if QUICK else 20
TEACHER_UNITS = 256 if QUICK else 1200
keras.utils.set_random_seed(0)
teacher = mlp([TEACHER_UNITS, TEACHER_UNITS], "teacher", dropout=0.3)
compile_classifier(teacher)
teacher_history = teacher.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)"""
)

DISTILL = """\
keras.utils.set_random_seed(1)
scratch = mlp([32], "student_scratch")
compile_classifier(scratch)
scratch_history = scratch.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)

keras.utils.set_random_seed(1)
student = mlp([32], "student")
distiller = kd.Distiller(student=student, teacher=teacher)
distiller.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    alpha=0.5,
    temperature=2.0,
)
distill_history = distiller.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)"""

PLOT = """\
import matplotlib

if "google.colab" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for label, history in [("teacher", teacher_history), ("student from scratch", scratch_history), ("distilled student", distill_history)]:
    epochs = np.arange(1, len(history.history["loss"]) + 1)
    axes[0].plot(epochs, history.history["val_accuracy"], marker="o", label=label)
    axes[1].plot(epochs, history.history["loss"], marker="o", label=label)
axes[0].set(title="Validation accuracy", xlabel="epoch")
axes[1].set(title="Training loss (the distiller's is the combined loss)", xlabel="epoch")
for axis in axes:
    axis.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUTPUT, "learning_curves.png"), dpi=80)
plt.show()"""

RESULTS = """\
def test_errors(model):
    logits = model.predict(x_test, batch_size=512, verbose=0)
    return int(np.sum(np.argmax(logits, axis=-1) != y_test))


print(f"{'model':<22}{'parameters':>12}{'test errors':>13}{'accuracy':>10}")
for name, model in [("teacher", teacher), ("student from scratch", scratch), ("distilled student", student)]:
    errors = test_errors(model)
    print(f"{name:<22}{model.count_params():>12,}{errors:>13,}{1 - errors / len(y_test):>10.2%}")"""

EXPORT = """\
# The distilled student is the user's own architecture: save it as a .keras
# file and export a SavedModel for serving (TF Serving, TFLite converters).
from keras_distill.export import export_saved_model

student.save(os.path.join(OUTPUT, "student.keras"))
export_saved_model(student, os.path.join(OUTPUT, "student_savedmodel"))
reloaded = keras.saving.load_model(os.path.join(OUTPUT, "student.keras"))
np.testing.assert_allclose(reloaded.predict(x_test[:8], verbose=0), student.predict(x_test[:8], verbose=0), rtol=1e-5)
print(sorted(os.listdir(OUTPUT)))"""


def distiller_notebook():
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# Knowledge distillation with `keras_distill.Distiller`\n\n"
                "A large teacher (784-1200-1200-10 with dropout) teaches a small student "
                "(784-32-10) on Fashion-MNIST, following Hinton et al. (2015), "
                "[Distilling the Knowledge in a Neural Network](https://arxiv.org/abs/1503.02531). "
                "We compare the distilled student with the same student trained on labels alone, "
                "then export it. Runs on TensorFlow, JAX or PyTorch; open it in Colab or run it locally."
            ),
            new_code_cell(SETUP),
            new_markdown_cell("## Data\nFashion-MNIST: 60,000 training and 10,000 test images of clothes."),
            new_code_cell(DATA),
            new_markdown_cell("## The teacher\nA wide MLP with dropout, trained on the labels."),
            new_code_cell(MODELS),
            new_markdown_cell(
                "## The student, from scratch and distilled\n"
                "Same architecture, same initial weights, same epochs. The distiller's loss is "
                "`alpha * CE(y, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)`."
            ),
            new_code_cell(DISTILL),
            new_markdown_cell("## Learning curves"),
            new_code_cell(PLOT),
            new_markdown_cell("## Test results"),
            new_code_cell(RESULTS),
            new_markdown_cell("## Export the student"),
            new_code_cell(EXPORT),
        ],
        metadata=METADATA,
    )


LM_SETUP = (
    SETUP.replace(
        'subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)',
        'subprocess.run([sys.executable, "-m", "pip", "install", "-q", source, "keras-hub"], check=True)',
    )
    + """
import keras_hub"""
)

LM_DATA = """\
# Byte-level text that ships offline: Debian's fortunes (apt-get install fortunes),
# else the licence texts every Debian/Ubuntu machine (and Colab) has.
import glob

FORTUNES, LICENCES = "/usr/share/games/fortunes", "/usr/share/common-licenses"
directory = FORTUNES if os.path.isdir(FORTUNES) else LICENCES
documents = []
for path in sorted(glob.glob(os.path.join(directory, "*"))):
    if os.path.isfile(path) and not os.path.islink(path) and not path.endswith((".dat", ".u8")):
        text = open(path, "rb").read().replace(b"\\0", b"")
        parts = text.split(b"\\n%\\n") if directory == FORTUNES else text.split(b"\\n\\n")
        documents += [part.strip() for part in parts if len(part.strip()) > 8]
documents = [documents[i] for i in np.random.default_rng(0).permutation(len(documents))]
LENGTH = 32 if QUICK else 128
TRAIN_BYTES = 20_000 if QUICK else 400_000


def to_sequences(docs, length=LENGTH, encode=None):
    # Token 0 ends a document and pads; padding_mask marks the inputs whose label is real.
    # Tokens are bytes, or encode(doc) ids for a model with its own tokenizer.
    windows = []
    for doc in docs:
        ids = np.frombuffer(doc, np.uint8) if encode is None else encode(doc)
        data = np.concatenate([np.asarray(ids, "int32"), [0]])
        windows += [data[s : s + length + 1] for s in range(0, max(len(data) - 1, 1), length)]
    tokens = np.zeros((len(windows), length + 1), "int32")
    mask = np.zeros((len(windows), length), bool)
    for row, window in enumerate(windows):
        tokens[row, : len(window)] = window
        mask[row, : len(window) - 1] = True
    return {"token_ids": tokens[:, :-1], "padding_mask": mask}, tokens[:, 1:]


def take(docs, budget):
    chosen, total = [], 0
    for doc in docs:
        if total >= budget:
            break
        chosen.append(doc)
        total += len(doc) + 1
    return chosen


held_out = documents[: len(documents) // 10]
train_docs, val_docs = take(documents[len(held_out):], TRAIN_BYTES), take(held_out, TRAIN_BYTES // 5)
x_train, y_train = to_sequences(train_docs)
x_val, y_val = to_sequences(val_docs)
print(directory, x_train["token_ids"].shape, x_val["token_ids"].shape)"""

LM_MODELS = """\
import time


def causal_lm(layers, width, name, vocabulary=256):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary, num_layers=layers, num_heads=max(width // 32, 1), hidden_dim=width,
        intermediate_dim=4 * width, max_sequence_length=LENGTH, dropout=0.0, name=f"{name}_backbone",
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None, name=name)


EPOCHS = 1 if QUICK else 3
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
weights, val_weights = x_train["padding_mask"].astype("float32"), x_val["padding_mask"].astype("float32")
keras.utils.set_random_seed(0)
teacher = causal_lm(2, 32, "teacher") if QUICK else causal_lm(4, 128, "teacher")
teacher.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CE)
start = time.perf_counter()
# keras-hub's CausalLM.fit batches arrays without shuffling them; keras.Model.fit
# shuffles every epoch, as the distillers do.
teacher_history = keras.Model.fit(
    teacher, x_train, y_train, sample_weight=weights, validation_data=(x_val, y_val, val_weights),
    batch_size=32, epochs=EPOCHS, verbose=2,
)
results = {"teacher": (teacher, time.perf_counter() - start)}  # name: (model, training seconds)"""

LM_DISTILL = """\
student_size = (1, 16) if QUICK else (2, 64)
keras.utils.set_random_seed(1)
scratch = causal_lm(*student_size, "student")
initial = scratch.get_weights()
scratch.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE)
start = time.perf_counter()
scratch_history = keras.Model.fit(
    scratch, x_train, y_train, sample_weight=weights, validation_data=(x_val, y_val, val_weights),
    batch_size=32, epochs=EPOCHS, verbose=2,
)
results["student from scratch"] = (scratch, time.perf_counter() - start)


def new_student():
    model = causal_lm(*student_size, "student")
    model.set_weights(initial)
    return model


# Token-level distillation: the padding mask comes from the inputs, so padded
# bytes count in neither loss. Top-k: the teacher's 8 most likely bytes, cached once.
top_k = kd.precompute_teacher_outputs(teacher, x_train, top_k=8, dtype="float16")
student = new_student()
distiller = kd.Distiller(student, teacher)
distiller.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE, alpha=0.5, temperature=1.0, distillation_loss="kl")
start = time.perf_counter()
distill_history = distiller.fit(
    x_train, kd.with_teacher_outputs(y_train, top_k), validation_data=(x_val, y_val),
    batch_size=32, epochs=EPOCHS, verbose=2,
)
results["off-policy KD, cached top-8"] = (student, time.perf_counter() - start)"""

LM_CHUNKED = """\
# The same token-level loss without ever holding the (batch, sequence, vocabulary)
# logits: from both backbones' hidden states, chunk_size tokens at a time, each chunk
# rebuilt in the backward pass. What a 262,144-token vocabulary needs.
chunked_student = new_student()
chunked = kd.CausalLMDistiller(chunked_student, teacher, chunk_size=LENGTH // 4)
chunked.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE, alpha=0.5, temperature=1.0, distillation_loss="kl")
start = time.perf_counter()
chunked.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, verbose=2)
results["off-policy KD, chunked"] = (chunked_student, time.perf_counter() - start)"""

LM_ON_POLICY = """\
# GKD: with probability lmbda a batch keeps each window's first PROMPT bytes and the
# student writes the rest itself; the teacher scores it, and the loss is the
# generalized JSD on the generated bytes. The weights mark where the prompt ends.
PROMPT = 8 if QUICK else 32
response = weights * (np.arange(LENGTH)[None, :] >= PROMPT - 1)
gkd_student = new_student()
gkd = kd.OnPolicyDistiller(gkd_student, teacher, lmbda=0.5, sampling_temperature=1.0, seed=0)
gkd.compile(optimizer=keras.optimizers.Adam(2e-3), beta=0.5, temperature=1.0)
start = time.perf_counter()
gkd.fit(x_train, y_train, sample_weight=response, batch_size=32, epochs=EPOCHS, verbose=2)
results["on-policy KD (GKD)"] = (gkd_student, time.perf_counter() - start)"""

LM_SEQUENCE = """\
# Sequence-level KD (Kim & Rush): the teacher continues the same prompts (greedy),
# and the student learns its text as data.
prompt_mask = x_train["padding_mask"] & (np.arange(LENGTH)[None, :] < PROMPT)
prompts = {"token_ids": np.where(prompt_mask, x_train["token_ids"], 0), "padding_mask": prompt_mask}
start = time.perf_counter()
x_seq, y_seq, w_seq = kd.generate_distillation_data(teacher, prompts, batch_size=256)
print(repr(bytes(int(b) for b in x_seq["token_ids"][0] if b).decode("utf-8", "replace")))
seq_student = new_student()
seq_student.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE)
keras.Model.fit(seq_student, x_seq, y_seq, sample_weight=w_seq, batch_size=32, epochs=EPOCHS, verbose=2)
results["sequence-level KD"] = (seq_student, time.perf_counter() - start)"""

LM_CROSS = """\
# A student with its own tokenizer: byte-level BPE trained here on the training text.
# The teacher reads the same windows as bytes; ULD compares the two models' sorted
# probabilities position by position, whatever their vocabularies.
import tokenizers

tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = tokenizers.decoders.ByteLevel()
tokenizer.train_from_iterator(
    [doc.decode("utf-8", "replace") for doc in train_docs],
    tokenizers.trainers.BpeTrainer(vocab_size=320 if QUICK else 512, special_tokens=["<end>"], show_progress=False,
                                   initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()),
)


def encode(doc):
    return tokenizer.encode(doc.decode("utf-8", "replace")).ids


def as_bytes(x):
    rows = [tokenizer.decode([int(i) for i in ids[mask] if i], skip_special_tokens=True).encode("utf-8")[:LENGTH]
            for ids, mask in zip(x["token_ids"], x["padding_mask"])]
    tokens, mask = np.zeros((len(rows), LENGTH), "int32"), np.zeros((len(rows), LENGTH), bool)
    for row, data in enumerate(rows):
        tokens[row, : len(data)], mask[row, : len(data)] = np.frombuffer(data, np.uint8), True
    return {"token_ids": tokens, "padding_mask": mask}


x_bpe, y_bpe = to_sequences(train_docs, LENGTH // 2, encode)
x_bpe_val, y_bpe_val = to_sequences(val_docs, LENGTH // 2, encode)
VOCABULARY = tokenizer.get_vocab_size()
keras.utils.set_random_seed(1)
bpe_initial = causal_lm(*student_size, "bpe_student", VOCABULARY).get_weights()
bpe_students = {}
for name, distill in [(f"BPE student ({VOCABULARY} tokens) from scratch", False), ("BPE student, ULD from the byte teacher", True)]:
    model = causal_lm(*student_size, "bpe_student", VOCABULARY)
    model.set_weights(bpe_initial)
    start = time.perf_counter()
    if distill:
        cross = kd.Distiller(model, teacher, separate_teacher_inputs=True)
        cross.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE, alpha=0.5, temperature=1.0,
                      distillation_loss="uld")
        cross.fit({"student": x_bpe, "teacher": as_bytes(x_bpe)}, y_bpe, batch_size=32, epochs=EPOCHS, verbose=2)
    else:
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE)
        keras.Model.fit(model, x_bpe, y_bpe, sample_weight=x_bpe["padding_mask"].astype("float32"), batch_size=32,
                        epochs=EPOCHS, verbose=2)
    results[name] = (model, time.perf_counter() - start)
    bpe_students[name] = model"""

LM_PLOT = """\
import matplotlib

if "google.colab" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt


def perplexity(model, x=x_val, y=y_val):
    # Per byte: the BPE students' token losses are summed over the same text, divided by its bytes.
    logits = model.predict(x, batch_size=64, verbose=0).astype("float64")
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
    return float(np.exp((nll * x["padding_mask"]).sum() / x_val["padding_mask"].sum()))


fig, axis = plt.subplots(figsize=(6, 4))
curves = [("teacher", teacher_history, "val_loss"), ("student from scratch", scratch_history, "val_loss"),
          ("distilled student (top-8)", distill_history, "val_student_loss")]
for label, history, key in curves:
    axis.plot(np.arange(1, EPOCHS + 1), np.exp(history.history[key]), marker="o", label=label)
axis.set(title="Held-out perplexity per byte", xlabel="epoch")
axis.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUTPUT, "learning_curves.png"), dpi=80)
plt.show()
print(f"{'model':<40}{'parameters':>12}{'perplexity/byte':>17}{'training (s)':>14}")
for name, (model, seconds) in results.items():
    value = perplexity(model, x_bpe_val, y_bpe_val) if name in bpe_students else perplexity(model)
    print(f"{name:<40}{model.count_params():>12,}{value:>17.3f}{seconds:>14.0f}")"""

LM_PRESET = """\
# With network access (e.g. on Colab, logged in to Kaggle, where Gemma's licence is
# accepted), start from real pretrained models: Gemma 3 1B teaching Gemma 3 270M,
# which share the 262,144-token vocabulary. At that vocabulary the logits of one batch
# of 8 x 256 tokens are 2 GB per model: the chunked distiller never builds them.
if "google.colab" in sys.modules and os.environ.get("KERAS_DISTILL_OFFLINE") != "1":
    preprocessor = keras_hub.models.Gemma3CausalLMPreprocessor.from_preset("gemma3_instruct_1b", sequence_length=256)
    big = keras_hub.models.Gemma3CausalLM.from_preset("gemma3_instruct_1b", preprocessor=None)
    small = keras_hub.models.Gemma3CausalLM.from_preset("gemma3_270m", preprocessor=None)
    texts = [doc.decode("utf-8", "replace") for doc in documents[:2000]]
    x_text, y_text, w_text = preprocessor(texts)  # token_ids, padding_mask; labels; mask
    x_text = {key: np.asarray(value) for key, value in x_text.items()}
    y_text, w_text = np.asarray(y_text), np.asarray(w_text)
    # Off-policy, chunked; then on-policy (GKD) on prompts of 64 tokens.
    gemma = kd.CausalLMDistiller(small, big, chunk_size=64)
    gemma.compile(optimizer=keras.optimizers.AdamW(1e-5), loss=CE, alpha=0.5, temperature=1.0,
                  distillation_loss="reverse_kl")
    gemma.fit(x_text, y_text, sample_weight=w_text, batch_size=8, epochs=1)
    on_policy = kd.OnPolicyDistiller(small, big, lmbda=0.5, end_token_id=preprocessor.tokenizer.end_token_id)
    on_policy.compile(optimizer=keras.optimizers.AdamW(1e-5), beta=0.5)
    on_policy.fit(x_text, y_text, sample_weight=w_text * (np.arange(256)[None, :] >= 63), batch_size=8, epochs=1)
else:
    print("Offline: skipping the pretrained Gemma 3 teacher.")"""


LM_EXPORT = """\
student.save(os.path.join(OUTPUT, "student.keras"))
reloaded = keras.saving.load_model(os.path.join(OUTPUT, "student.keras"))
np.testing.assert_allclose(
    reloaded.predict(x_val, batch_size=64, verbose=0)[:2], student.predict(x_val, batch_size=64, verbose=0)[:2],
    rtol=1e-4, atol=1e-4,
)
print(sorted(os.listdir(OUTPUT)))"""


def language_model_notebook():
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# Distilling a language model with keras-hub\\n\\n"
                "A byte-level GPT-2 teacher (`keras_hub.models.GPT2CausalLM`, random init) teaches a "
                "student half its depth and width, every student from the same initial weights for the "
                "same epochs: token by token from the teacher's cached top-8 bytes (the loss averaged over "
                "real tokens only), the same loss chunked over the sequence (`kd.CausalLMDistiller`), "
                "on-policy on the student's own samples (`kd.OnPolicyDistiller`, GKD), sequence-level "
                "on the teacher's generated text (`kd.generate_distillation_data`), and into a student "
                "with its own BPE tokenizer (`separate_teacher_inputs=True`, the ULD loss). With network "
                "access, the last section distills Gemma 3 1B into Gemma 3 270M from keras-hub presets."
            ),
            new_code_cell(LM_SETUP),
            new_markdown_cell("## Data: bytes of text that ships with Debian"),
            new_code_cell(LM_DATA),
            new_markdown_cell("## The teacher"),
            new_code_cell(LM_MODELS),
            new_markdown_cell("## The student: from scratch, and distilled from the cached top-k"),
            new_code_cell(LM_DISTILL),
            new_markdown_cell("## Chunked: large vocabularies without the full logits"),
            new_code_cell(LM_CHUNKED),
            new_markdown_cell("## On-policy: the student learns on its own text (GKD)"),
            new_code_cell(LM_ON_POLICY),
            new_markdown_cell("## Sequence-level: the student learns the teacher's text"),
            new_code_cell(LM_SEQUENCE),
            new_markdown_cell("## A student with its own tokenizer"),
            new_code_cell(LM_CROSS),
            new_markdown_cell("## Perplexity per byte and training time"),
            new_code_cell(LM_PLOT),
            new_markdown_cell("## Pretrained models: Gemma 3 1B into Gemma 3 270M (needs the network)"),
            new_code_cell(LM_PRESET),
            new_markdown_cell("## Save the student"),
            new_code_cell(LM_EXPORT),
        ],
        metadata=METADATA,
    )


DEPLOY_SETUP = SETUP.replace(
    '"pip", "install", "-q", source]',
    '"pip", "install", "-q", source + "[export]"]',
)

DEPLOY_DISTILL = (
    MODELS
    + """

# The student: the same MLP family, 10x fewer parameters, distilled from the teacher.
keras.utils.set_random_seed(1)
student = mlp([128], "student")
distiller = kd.Distiller(student=student, teacher=teacher)
distiller.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    alpha=0.5,
    temperature=4.0,
)
distill_history = distiller.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)"""
)

DEPLOY_QUANTIZE = """\
# Keras quantizes the Dense layers (model.quantize); quantize_student returns a
# new model and leaves `student` as it was.
RECOVER_EPOCHS = 1 if QUICK else 2
post_training = kd.quantize_student(student, mode="int4", method="ptq")
recovered = kd.quantize_student(student, teacher, x_train, y_train, mode="int4", method="lora",
                                epochs=RECOVER_EPOCHS, validation_data=(x_val, y_val), verbose=2)


def accuracy(model):
    return float(np.mean(np.argmax(model.predict(x_test, batch_size=512, verbose=0), -1) == y_test))


results = {"float32": accuracy(student), "int4 post-training": accuracy(post_training),
           "int4 recovered by distillation": accuracy(recovered)}
for name, value in results.items():
    print(f"{name:<32}{value:.2%}")"""

DEPLOY_EXPORT = """\
# export() writes the artifact, runs it in its own runtime, compares it with the
# Keras model (an ExportMismatchError otherwise) and measures size and latency.
from keras_distill.export import export, export_saved_model, load_artifact

litert = export(student, os.path.join(OUTPUT, "student_int8"), format="litert", litert_int8=True,
                sample_inputs=x_test[:64])
onnx = export(recovered, os.path.join(OUTPUT, "student_int4"), format="onnx", sample_inputs=x_test[:64],
              tolerance=1e-2)
for report in (litert, onnx):
    print(f"{report.format:<8}{report.path:<60}{report.size_bytes / 1e3:>8.1f} kB"
          f"{report.latency_ms:>8.3f} ms  max diff {report.max_difference:.1e}")
student.save(os.path.join(OUTPUT, "student.keras"))
export_saved_model(student, os.path.join(OUTPUT, "student_savedmodel"))"""

DEPLOY_INTERPRETER = """\
# The .tflite file in the LiteRT interpreter a phone runs, on the whole test set.
from ai_edge_litert.interpreter import Interpreter

interpreter = Interpreter(model_path=litert.path)
interpreter.allocate_tensors()
inputs, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
predictions = []
for image in x_test:
    interpreter.set_tensor(inputs["index"], image[None])
    interpreter.invoke()
    predictions.append(np.argmax(interpreter.get_tensor(outputs["index"])[0]))
results["int8 .tflite (LiteRT interpreter)"] = float(np.mean(np.array(predictions) == y_test))
results["int4 .onnx (onnxruntime)"] = float(np.mean(np.argmax(load_artifact(onnx.path, "onnx")(x_test), -1) == y_test))
for name, value in results.items():
    print(f"{name:<36}{value:.2%}")"""

DEPLOY_PLOT = """\
import matplotlib

if "google.colab" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axis = plt.subplots(figsize=(8, 3.5))
axis.barh(list(results), [100 * value for value in results.values()])
axis.set(xlabel="test accuracy (%)", xlim=(min(results.values()) * 100 - 5, 100))
fig.tight_layout()
fig.savefig(os.path.join(OUTPUT, "accuracy_by_format.png"), dpi=80)
plt.show()"""


def deploy_notebook():
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# From a distilled student to a phone: quantize, recover, export\n\n"
                "A teacher (784-1200-1200-10) is distilled into a 784-128-10 student on Fashion-MNIST. The "
                "student is quantized to int4 with Keras (`model.quantize`), which costs accuracy; "
                "`kd.quantize_student(..., method='lora')` wins it back with LoRA adapters trained by "
                "distillation from the float teacher while the int4 kernels stay frozen. Then "
                "`keras_distill.export.export` writes a LiteRT `.tflite` file and an ONNX file, each checked "
                "against the Keras model in its own runtime, and we run the `.tflite` file in the LiteRT "
                "interpreter. Needs `pip install keras-distill[export]`."
            ),
            new_code_cell(DEPLOY_SETUP),
            new_markdown_cell("## Data"),
            new_code_cell(DATA),
            new_markdown_cell("## Teacher and distilled student"),
            new_code_cell(DEPLOY_DISTILL),
            new_markdown_cell("## Quantize, then recover by distillation"),
            new_code_cell(DEPLOY_QUANTIZE),
            new_markdown_cell(
                "## Export with proof\n"
                "The TFLite converter cannot read layers Keras quantized, so the `.tflite` file is the float "
                "student with the converter's own int8 weights (`litert_int8=True`); the int4 student goes to ONNX."
            ),
            new_code_cell(DEPLOY_EXPORT),
            new_markdown_cell("## The artifacts in their runtimes"),
            new_code_cell(DEPLOY_INTERPRETER),
            new_code_cell(DEPLOY_PLOT),
        ],
        metadata=METADATA,
    )


def write(notebook, name):
    # Numbered cell ids: regenerating an unchanged notebook leaves it unchanged.
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"
    nbformat.write(notebook, os.path.join(HERE, name))


def main():
    write(distiller_notebook(), "01_distiller.ipynb")
    write(language_model_notebook(), "07_language_model.ipynb")
    write(deploy_notebook(), "08_deploy.ipynb")
    for name, notebook in method_notebooks(SETUP, DATA, METADATA).items():
        write(notebook, name)


if __name__ == "__main__":
    main()
