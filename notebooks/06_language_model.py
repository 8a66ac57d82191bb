# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Distilling a language model with keras-hub
#
# A byte-level GPT-2 teacher (`keras_hub.models.GPT2CausalLM`, random init) teaches a student half its depth and width, every student from the same initial weights for the same epochs: token by token from the teacher's cached top-8 bytes (the loss averaged over real tokens only), the same loss chunked over the sequence (`kd.CausalLMDistiller`), a student cut from the teacher's own weights (`kd.cut_student`), on-policy on the student's own samples (`kd.OnPolicyDistiller`, GKD, with the teacher's judgement of every student's own samples, `kd.on_policy_divergence`), sequence-level on the teacher's generated text (`kd.generate_distillation_data`), and into a student with its own BPE tokenizer (`separate_teacher_inputs=True`, the ULD loss). With network access, the last section distills Gemma 3 1B into Gemma 3 270M from keras-hub presets.
#
# This notebook shows the mechanics at a size that runs in minutes: the teacher trains for 8 epochs, every student for 3, and the teacher ends clearly better than the student from scratch (16% lower held-out perplexity in the run measured here). Three student epochs are few: here only the student cut from the teacher beats the student from scratch (the table at the end says by how much). Whether distillation pays over longer training is measured by `examples/stdlib_lm.py` (Python source, 3 seeds; the table is in the language-models guide, `docs/guides/language-models.md`).
#
# **Run time**: 12 min on 2 CPU cores with the JAX backend (measured here, full run as a script, 745 s, 2026-12-05), without the Gemma section; about 3 min on a Colab GPU runtime (estimated, not measured). Pick a GPU runtime. The Gemma section needs the network and Kaggle credentials, and skips itself without them.

# %%
# Setup: keras_distill if it is installed; otherwise (Colab) it is installed
# from KERAS_DISTILL_SOURCE (a wheel you uploaded, or a git URL) or the
# package index. The backend is chosen before Keras is imported.
import importlib.util
import os
import subprocess
import sys

os.environ.setdefault(
    "KERAS_BACKEND", "jax"
)  # the fastest here for these small transformers; or "jax", "tensorflow", "torch"
if importlib.util.find_spec("keras_distill") is None:
    source = os.environ.get("KERAS_DISTILL_SOURCE", "keras-distill")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", source + "", "keras-hub", "tokenizers"],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        print(
            f"keras-distill could not be installed from {source!r}: it is not on the package index yet.\n"
            "To run this notebook in Colab: in a clone of the repository run `make wheel`, upload\n"
            "dist/keras_distill-0.1.0-py3-none-any.whl to this session (the Files pane), run\n"
            "%env KERAS_DISTILL_SOURCE=/content/keras_distill-0.1.0-py3-none-any.whl\n"
            "in a new cell, then run all cells again."
        )
        raise SystemExit("keras-distill is not installed: see the message above.")

# KERAS_DISTILL_QUICK=1 runs on a small subset (the test suite sets it).
QUICK = os.environ.get("KERAS_DISTILL_QUICK") == "1"
OUTPUT = os.environ.get("KERAS_DISTILL_OUTPUT", "distill-notebook-output")
os.makedirs(OUTPUT, exist_ok=True)

import keras
import numpy as np

import keras_distill as kd

print("Keras", keras.__version__, "backend:", keras.backend.backend())
# %% [markdown]
# ## Data: bytes of text that ships with Debian
# %%
# Byte-level text that ships offline: Debian's fortunes (apt-get install fortunes),
# else the licence texts every Debian/Ubuntu machine (and Colab) has.
import glob

import keras_hub

FORTUNES, LICENCES = "/usr/share/games/fortunes", "/usr/share/common-licenses"
directory = FORTUNES if os.path.isdir(FORTUNES) else LICENCES
documents = []
for path in sorted(glob.glob(os.path.join(directory, "*"))):
    if os.path.isfile(path) and not os.path.islink(path) and not path.endswith((".dat", ".u8")):
        text = open(path, "rb").read().replace(b"\0", b"")
        parts = text.split(b"\n%\n") if directory == FORTUNES else text.split(b"\n\n")
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
train_docs, val_docs = take(documents[len(held_out) :], TRAIN_BYTES), take(held_out, TRAIN_BYTES // 5)
x_train, y_train = to_sequences(train_docs)
x_val, y_val = to_sequences(val_docs)
print(directory, x_train["token_ids"].shape, x_val["token_ids"].shape)

# %% [markdown]
# ## The teacher

# %%
import time


def causal_lm(layers, width, name, vocabulary=256):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary,
        num_layers=layers,
        num_heads=max(width // 32, 1),
        hidden_dim=width,
        intermediate_dim=4 * width,
        max_sequence_length=LENGTH,
        dropout=0.0,
        name=f"{name}_backbone",
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None, name=name)


EPOCHS = 1 if QUICK else 3  # every student's
TEACHER_EPOCHS = 1 if QUICK else 8
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
weights, val_weights = x_train["padding_mask"].astype("float32"), x_val["padding_mask"].astype("float32")


def perplexity(model, x=x_val, y=y_val):
    # Per byte: the BPE students' token losses are summed over the same text, divided by its bytes.
    logits = model.predict(x, batch_size=64, verbose=0).astype("float64")
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
    return float(np.exp((nll * x["padding_mask"]).sum() / x_val["padding_mask"].sum()))


class HeldOutPerplexity(keras.callbacks.Callback):
    """`perplexity(model)` after every epoch: the same measure for every curve
    (a Keras val_loss would average over the padded bytes too)."""

    def __init__(self, model):
        super().__init__()
        self.measured, self.values = model, []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(perplexity(self.measured))


# The teacher trains longer than the students (8 epochs, a warm-up and cosine decay,
# gradients clipped) so that it knows clearly more than a student trained from scratch.
keras.utils.set_random_seed(0)
teacher = causal_lm(2, 32, "teacher") if QUICK else causal_lm(4, 128, "teacher")
steps = TEACHER_EPOCHS * -(-len(y_train) // 32)
schedule = keras.optimizers.schedules.CosineDecay(
    1.5e-4, steps - max(steps // 20, 1), alpha=0.1, warmup_target=3e-3, warmup_steps=max(steps // 20, 1)
)
teacher.compile(optimizer=keras.optimizers.Adam(schedule, global_clipnorm=1.0), loss=CE)
teacher_curve = HeldOutPerplexity(teacher)
start = time.perf_counter()
# keras-hub's CausalLM.fit batches arrays without shuffling them; keras.Model.fit
# shuffles every epoch, as the distillers do.
keras.Model.fit(
    teacher,
    x_train,
    y_train,
    sample_weight=weights,
    batch_size=32,
    epochs=TEACHER_EPOCHS,
    callbacks=[teacher_curve],
    verbose=2,
)
results = {"teacher": (teacher, time.perf_counter() - start)}  # name: (model, training seconds)

# %% [markdown]
# ## The student: from scratch, and distilled from the cached top-k

# %%
student_size = (1, 16) if QUICK else (2, 64)
keras.utils.set_random_seed(1)
scratch = causal_lm(*student_size, "student")
initial = scratch.get_weights()
scratch.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE)
scratch_curve = HeldOutPerplexity(scratch)
start = time.perf_counter()
keras.Model.fit(
    scratch,
    x_train,
    y_train,
    sample_weight=weights,
    batch_size=32,
    epochs=EPOCHS,
    callbacks=[scratch_curve],
    verbose=2,
)
results["student from scratch"] = (scratch, time.perf_counter() - start)


def new_student():
    model = causal_lm(*student_size, "student")
    model.set_weights(initial)
    return model


# Token-level distillation: the padding mask comes from the inputs, so padded
# bytes count in neither loss. Top-k: the teacher's 8 most likely bytes, cached once.
# The same cache takes distillation_loss="reverse_kl" or kd.losses.GeneralizedJSD(beta=...)
# too: each over the 8 bytes plus one bucket for the teacher's remaining mass.
top_k = kd.precompute_teacher_outputs(teacher, x_train, top_k=8, dtype="float16")
student = new_student()
distiller = kd.Distiller(student=student, teacher=teacher)
distiller.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE, alpha=0.5, temperature=1.0, distillation_loss="kl")
distill_curve = HeldOutPerplexity(student)
start = time.perf_counter()
distiller.fit(
    x_train,
    kd.with_teacher_outputs(y_train, top_k),
    batch_size=32,
    epochs=EPOCHS,
    callbacks=[distill_curve],
    verbose=2,
)
results["off-policy KD, cached top-8"] = (student, time.perf_counter() - start)

# %% [markdown]
# ## Chunked: large vocabularies without the full logits

# %%
# The same token-level loss without ever holding the (batch, sequence, vocabulary)
# logits: from both backbones' hidden states, chunk_size tokens at a time, each chunk
# rebuilt in the backward pass. What a 262,144-token vocabulary needs.
chunked_student = new_student()
chunked = kd.CausalLMDistiller(student=chunked_student, teacher=teacher, chunk_size=LENGTH // 4)
chunked.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE, alpha=0.5, temperature=1.0, distillation_loss="kl")
start = time.perf_counter()
chunked.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, verbose=2)
results["off-policy KD, chunked"] = (chunked_student, time.perf_counter() - start)

# %% [markdown]
# ## A student cut from its teacher
#
# Instead of random weights, `kd.cut_student` makes the student out of the teacher (DistilBERT, Minitron): every other layer, the heads, MLP units and hidden channels that matter most on a calibration batch, their weights copied. Then distil it as before. Measured with a teacher that knows clearly more (`examples/lm_recipe.py`, Python source, 3 seeds), the cut-and-distilled student ends 22.9% below the same student distilled from random weights; the table at the end shows what it does here.

# %%
layers, width = student_size
cut_student = kd.cut_student(
    teacher,
    num_layers=layers,
    layers="even",  # or "importance": the layers that change the hidden states most
    num_heads=max(width // 32, 1),
    hidden_dim=width,
    intermediate_dim=4 * width,
    calibration={key: value[:256] for key, value in x_train.items()},
    name="cut_student_backbone",
)
cut = kd.Distiller(student=cut_student, teacher=teacher)
cut.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE, alpha=0.5, temperature=1.0, distillation_loss="kl")
start = time.perf_counter()
cut.fit(x_train, kd.with_teacher_outputs(y_train, top_k), batch_size=32, epochs=EPOCHS, verbose=2)
results["off-policy KD, cached top-8, cut from the teacher"] = (cut_student, time.perf_counter() - start)

# %% [markdown]
# ## On-policy: the student learns on its own text (GKD)
#
# On-policy distillation is meant to continue a student already trained (with labels, or distilled off-policy): from random weights, as here for the mechanics, half its batches are the student's noise. Continued from an off-policy-distilled student (`examples/lm_recipe.py`, 3 seeds), it lowers the teacher's reverse KL on the student's own samples more than the same steps off-policy, at 1.4-2.7% higher held-out perplexity.

# %%
# GKD: with probability lmbda a batch keeps each window's first PROMPT bytes and the
# student writes the rest itself; the teacher scores it, and the loss is the
# generalized JSD on the generated bytes. The weights mark where the prompt ends.
PROMPT = 8 if QUICK else 32
response = weights * (np.arange(LENGTH)[None, :] >= PROMPT - 1)
gkd_student = new_student()
gkd = kd.OnPolicyDistiller(student=gkd_student, teacher=teacher, lmbda=0.5, sampling_temperature=1.0, seed=0)
gkd.compile(optimizer=keras.optimizers.Adam(2e-3), beta=0.5, temperature=1.0)
start = time.perf_counter()
gkd.fit(x_train, y_train, sample_weight=response, batch_size=32, epochs=EPOCHS, verbose=2)
results["on-policy KD (GKD)"] = (gkd_student, time.perf_counter() - start)

# %% [markdown]
# ## Sequence-level: the student learns the teacher's text

# %%
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
results["sequence-level KD"] = (seq_student, time.perf_counter() - start)

# %% [markdown]
# ## A student with its own tokenizer

# %%
# A student with its own tokenizer: byte-level BPE trained here on the training text.
# The teacher reads the same windows as bytes; ULD compares the two models' sorted
# probabilities position by position, whatever their vocabularies.
import tokenizers

tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = tokenizers.decoders.ByteLevel()
tokenizer.train_from_iterator(
    [doc.decode("utf-8", "replace") for doc in train_docs],
    tokenizers.trainers.BpeTrainer(
        vocab_size=320 if QUICK else 512,
        special_tokens=["<end>"],
        show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    ),
)


def encode(doc):
    return tokenizer.encode(doc.decode("utf-8", "replace")).ids


def as_bytes(x):
    rows = [
        tokenizer.decode([int(i) for i in ids[mask] if i], skip_special_tokens=True).encode("utf-8")[:LENGTH]
        for ids, mask in zip(x["token_ids"], x["padding_mask"])
    ]
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
for name, distill in [
    (f"BPE student ({VOCABULARY} tokens) from scratch", False),
    ("BPE student, ULD from the byte teacher", True),
]:
    model = causal_lm(*student_size, "bpe_student", VOCABULARY)
    model.set_weights(bpe_initial)
    start = time.perf_counter()
    if distill:
        cross = kd.Distiller(student=model, teacher=teacher, separate_teacher_inputs=True)
        cross.compile(
            optimizer=keras.optimizers.Adam(2e-3), loss=CE, alpha=0.5, temperature=1.0, distillation_loss="uld"
        )
        cross.fit({"student": x_bpe, "teacher": as_bytes(x_bpe)}, y_bpe, batch_size=32, epochs=EPOCHS, verbose=2)
    else:
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=CE)
        keras.Model.fit(
            model,
            x_bpe,
            y_bpe,
            sample_weight=x_bpe["padding_mask"].astype("float32"),
            batch_size=32,
            epochs=EPOCHS,
            verbose=2,
        )
    results[name] = (model, time.perf_counter() - start)
    bpe_students[name] = model

# %% [markdown]
# ## Perplexity per byte and training time

# %%
import matplotlib

if "google.colab" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axis = plt.subplots(figsize=(6, 4))
curves = [
    ("teacher", teacher_curve),
    ("student from scratch", scratch_curve),
    ("distilled student (top-8)", distill_curve),
]
for label, curve in curves:
    axis.plot(np.arange(1, len(curve.values) + 1), curve.values, marker="o", label=label)
axis.set(title="Held-out perplexity per byte", xlabel="epoch")
axis.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUTPUT, "learning_curves.png"), dpi=80)
plt.show()
# What on-policy distillation optimizes: the teacher's reverse KL on the student's own
# continuations of held-out prompts (per sampled byte; the same seed, so the same draws).
judge_x = {key: value[:64] for key, value in x_val.items()}
judge_weights = (np.arange(LENGTH)[None, :] >= PROMPT - 1) * val_weights[:64]


def judged(model):
    return kd.on_policy_divergence(model, teacher, judge_x, judge_weights, seed=0)["reverse_kl"]


print(f"{'model':<50}{'parameters':>12}{'perplexity/byte':>17}{'on-policy KL':>14}{'training (s)':>14}")
for name, (model, seconds) in results.items():
    if name in bpe_students:  # its own tokens: the byte teacher cannot judge them
        value, judgement = perplexity(model, x_bpe_val, y_bpe_val), "-"
    else:
        value, judgement = perplexity(model), f"{judged(model):.3f}"
    print(f"{name:<50}{model.count_params():>12,}{value:>17.3f}{judgement:>14}{seconds:>14.0f}")

# %% [markdown]
# What to expect, from the run measured here (one seed, JAX, 2 CPU cores): the teacher reaches 11.39 perplexity per byte and the student from scratch 13.63. At the same epoch the teacher is behind the student from scratch (about 15.4 against 13.6 after three, the plot above) and passes it only in its fifth: the larger model needs more steps, and in three the students distilled from random weights end above the student from scratch (14.72 top-8, 14.10 chunked), as do the on-policy student (16.44, half its batches its own noise) and the sequence-level student (231.5, trained only on the teacher's greedy text, which repeats itself). The student cut from the teacher's own weights ends at 12.19, 11% below the student from scratch, and the teacher judges its samples best (reverse KL 0.123 against 0.344). The BPE students are compared per byte of the same text: 9.75 from scratch, 10.44 with ULD from the byte teacher. Over longer training with 3 seeds (`examples/stdlib_lm.py`), distillation from random weights pays too: the table in the language-models guide.

# %% [markdown]
# ## Pretrained models: Gemma 3 1B into Gemma 3 270M (needs the network)


# %%
# With network access (e.g. on Colab, logged in to Kaggle, where Gemma's licence is
# accepted), start from real pretrained models: Gemma 3 1B teaching Gemma 3 270M,
# which share the 262,144-token vocabulary. At that vocabulary the logits of one batch
# of 8 x 256 tokens are 2 GB per model: the chunked distiller never builds them.
def kaggle_credentials():
    """Whether Kaggle credentials are set: the environment, ~/.kaggle, or Colab's secrets."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    if os.path.exists(os.path.expanduser("~/.kaggle/kaggle.json")):
        return True
    try:
        from google.colab import userdata

        os.environ["KAGGLE_USERNAME"] = userdata.get("KAGGLE_USERNAME")
        os.environ["KAGGLE_KEY"] = userdata.get("KAGGLE_KEY")
        return True
    except Exception:  # not in Colab, or no such secrets
        return False


if os.environ.get("KERAS_DISTILL_OFFLINE") == "1" or not kaggle_credentials():
    print(
        "Skipping the pretrained Gemma 3 teacher: it needs the network and Kaggle credentials with Gemma's licence "
        "accepted (set KAGGLE_USERNAME and KAGGLE_KEY, or add them to Colab's secrets)."
    )
else:
    preprocessor = keras_hub.models.Gemma3CausalLMPreprocessor.from_preset("gemma3_instruct_1b", sequence_length=256)
    big = keras_hub.models.Gemma3CausalLM.from_preset("gemma3_instruct_1b", preprocessor=None)
    small = keras_hub.models.Gemma3CausalLM.from_preset("gemma3_270m", preprocessor=None)
    texts = [doc.decode("utf-8", "replace") for doc in documents[:2000]]
    x_text, y_text, w_text = preprocessor(texts)  # token_ids, padding_mask; labels; mask
    x_text = {key: np.asarray(value) for key, value in x_text.items()}
    y_text, w_text = np.asarray(y_text), np.asarray(w_text)
    # Off-policy, chunked; then on-policy (GKD) on prompts of 64 tokens.
    gemma = kd.CausalLMDistiller(student=small, teacher=big, chunk_size=64)
    gemma.compile(
        optimizer=keras.optimizers.AdamW(1e-5), loss=CE, alpha=0.5, temperature=1.0, distillation_loss="reverse_kl"
    )
    gemma.fit(x_text, y_text, sample_weight=w_text, batch_size=8, epochs=1)
    on_policy = kd.OnPolicyDistiller(
        student=small, teacher=big, lmbda=0.5, end_token_id=preprocessor.tokenizer.end_token_id
    )
    on_policy.compile(optimizer=keras.optimizers.AdamW(1e-5), beta=0.5)
    on_policy.fit(x_text, y_text, sample_weight=w_text * (np.arange(256)[None, :] >= 63), batch_size=8, epochs=1)

# %% [markdown]
# ## Save the student

# %%
student.save(os.path.join(OUTPUT, "student.keras"))
reloaded = keras.saving.load_model(os.path.join(OUTPUT, "student.keras"))
np.testing.assert_allclose(
    reloaded.predict(x_val, batch_size=64, verbose=0)[:2],
    student.predict(x_val, batch_size=64, verbose=0)[:2],
    rtol=1e-4,
    atol=1e-4,
)
print(sorted(os.listdir(OUTPUT)))
