"""Distilling a byte-level GPT-2 language model on text that ships offline.

Documents: Debian's `fortunes` (one document per fortune, ~2.8 MB), or the
licence texts under /usr/share/common-licenses where fortunes is missing.
Tokens are bytes (vocabulary 256; byte 0 ends a document and pads).
A teacher `keras_hub.models.GPT2CausalLM` (random init) is trained on the
next byte, then students half its depth and width, all from the same
initial weights for the same epochs and batches:

- from scratch (labels only);
- off-policy token-level KD, dense (`kd.Distiller`, forward KL), and the
  same from the teacher's cached top-k bytes;
- the same loss chunked over the sequence (`kd.CausalLMDistiller`);
- on-policy (GKD, `kd.OnPolicyDistiller`: half the batches continue each
  window's prompt with the student's own samples, scored by the teacher);
- sequence-level KD (`kd.generate_distillation_data`: the student learns
  the teacher's greedy continuations of the same prompts);
- cross-tokenizer: a student with its own BPE vocabulary (trained here
  with `tokenizers`), from scratch and distilled from the byte-level
  teacher with the ULD loss.

Reports held-out perplexity per byte (exp of the total cross-entropy over
the held-out bytes, end bytes included, divided by their number: the BPE
student's per-token losses are summed over the same text, so its number
is comparable) and the wall time of each training.

    python examples/byte_level_lm.py --backend jax [--quick]
"""

import argparse
import glob
import math
import os
import sys
import time

FORTUNES = "/usr/share/games/fortunes"
LICENCES = "/usr/share/common-licenses"
END = 0  # ends a document and pads; never a byte of the texts


def load_documents(directory=None):
    """A list of byte strings, one per document."""
    if directory is None:
        directory = FORTUNES if os.path.isdir(FORTUNES) else LICENCES
    documents = []
    for path in sorted(glob.glob(os.path.join(directory, "*"))):
        if not os.path.isfile(path) or path.endswith((".dat", ".u8")) or os.path.islink(path):
            continue
        with open(path, "rb") as handle:
            text = handle.read().replace(b"\0", b"")
        parts = text.split(b"\n%\n") if directory == FORTUNES else text.split(b"\n\n")
        documents += [part.strip() for part in parts if len(part.strip()) > 8]
    if not documents:
        raise FileNotFoundError(
            f"No text found in {directory}. Install Debian's fortunes package "
            "(sudo apt-get install fortunes) or pass --text-dir."
        )
    return documents


def to_sequences(documents, length, encode=None):
    """`{"token_ids", "padding_mask"}` inputs and next-token labels, `(n, length)`.

    Each document, as bytes (or as `encode(document)` ids), plus its end
    token, is cut into windows of `length + 1` tokens; a short window is
    padded, and its padding mask marks the input positions whose label is
    a real token or the end token.
    """
    import numpy as np

    windows = []
    for document in documents:
        data = np.frombuffer(document, dtype=np.uint8) if encode is None else encode(document)
        data = np.concatenate([np.asarray(data, "int32"), [END]])
        for start in range(0, max(len(data) - 1, 1), length):
            windows.append(data[start : start + length + 1])
    tokens = np.full((len(windows), length + 1), END, dtype="int32")
    mask = np.zeros((len(windows), length), dtype=bool)
    for row, window in enumerate(windows):
        tokens[row, : len(window)] = window
        mask[row, : len(window) - 1] = True
    return {"token_ids": tokens[:, :-1], "padding_mask": mask}, tokens[:, 1:]


def gpt2(layers, width, name, length, vocabulary=256):
    """A keras-hub GPT-2 causal LM without preprocessor (random init), one
    head per 32 units, no dropout."""
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary,
        num_layers=layers,
        num_heads=max(width // 32, 1),
        hidden_dim=width,
        intermediate_dim=4 * width,
        max_sequence_length=length,
        dropout=0.0,
        name=f"{name}_backbone",
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None, name=name)


def token_losses(model, x, labels, batch_size):
    """The cross-entropy of every next token, `(n, length)`, float64 in NumPy."""
    import numpy as np

    logits = model.predict(x, batch_size=batch_size, verbose=0).astype("float64")
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]


def perplexity(model, x, labels, batch_size, tokens_per_byte=1.0):
    """Perplexity per byte: exp(mean cross-entropy per real token x tokens
    per byte)."""
    mask = x["padding_mask"]
    return math.exp(float((token_losses(model, x, labels, batch_size) * mask).sum() / mask.sum()) * tokens_per_byte)


def train_bpe(documents, vocabulary_size):
    """A byte-level BPE tokenizer trained on the documents (offline), with
    the end token at id 0."""
    import tokenizers

    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocabulary_size,
        special_tokens=["<end>"],
        show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([d.decode("utf-8", "replace") for d in documents], trainer)
    return tokenizer


def teacher_bytes(tokenizer, x, length):
    """The teacher's inputs for BPE windows: the bytes of the same text."""
    import numpy as np

    sequences = []
    for ids, mask in zip(x["token_ids"], x["padding_mask"]):
        text = tokenizer.decode([int(i) for i in ids[mask] if i != END], skip_special_tokens=True)
        sequences.append(np.frombuffer(text.encode("utf-8"), np.uint8)[:length].astype("int32"))
    tokens = np.full((len(sequences), length), END, "int32")
    mask = np.zeros((len(sequences), length), bool)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)], mask[row, : len(sequence)] = sequence, True
    return {"token_ids": tokens, "padding_mask": mask}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--quick", action="store_true", help="tiny models and data, one epoch")
    parser.add_argument("--train-bytes", type=int, default=600_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=32, help="prompt bytes of the on-policy and sequence-level runs")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--bpe-vocabulary", type=int, default=512)
    parser.add_argument("--text-dir", help="directory of text files (default: fortunes, else licences)")
    parser.add_argument("--output", default="lm-output", help="directory for the table and the student")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.quick:
        args.train_bytes, args.epochs, args.length, args.prompt, args.bpe_vocabulary = 20_000, 1, 32, 8, 320
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras
    import numpy as np

    import keras_distill as kd

    os.makedirs(args.output, exist_ok=True)
    documents = load_documents(args.text_dir)
    order = np.random.default_rng(0).permutation(len(documents))
    documents = [documents[i] for i in order]
    held_out = documents[: max(len(documents) // 10, 1)]
    train, total = [], 0
    for document in documents[len(held_out) :]:
        if total >= args.train_bytes:
            break
        train.append(document)
        total += len(document) + 1
    held_out_bytes = args.train_bytes // 5
    test, total = [], 0
    for document in held_out:
        if total >= held_out_bytes:
            break
        test.append(document)
        total += len(document) + 1
    x, y = to_sequences(train, args.length)
    x_test, y_test = to_sequences(test, args.length)
    weights = x["padding_mask"].astype("float32")

    def causal_lm(layers, width, name, vocabulary=256):
        return gpt2(layers, width, name, args.length, vocabulary)

    teacher_size, student_size = ((2, 32), (1, 16)) if args.quick else ((4, 128), (2, 64))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batch_size = 32
    rows, students = [], {}

    def record(label, model, seconds, value=None):
        value = perplexity(model, x_test, y_test, batch_size) if value is None else value
        rows.append((label, model.count_params(), value, seconds))
        students[label] = model
        print(f"{label}: {value:.3f} in {seconds:.0f} s", flush=True)

    def timed(fit):
        start = time.perf_counter()
        fit()
        return time.perf_counter() - start

    def fit_alone(model, inputs, labels, sample_weight):
        # keras-hub's `CausalLM.fit` batches arrays without shuffling them;
        # `keras.Model.fit` shuffles every epoch, as the distillers' fit does.
        return keras.Model.fit(
            model, inputs, labels, sample_weight=sample_weight, batch_size=batch_size, epochs=args.epochs, verbose=0
        )

    keras.utils.set_random_seed(0)
    teacher = causal_lm(*teacher_size, "teacher")
    teacher.compile(optimizer=keras.optimizers.Adam(3e-3), loss=ce)
    record("teacher", teacher, timed(lambda: fit_alone(teacher, x, y, weights)))
    keras.utils.set_random_seed(1)
    initial = causal_lm(*student_size, "student").get_weights()

    def student():
        # Same initial weights and the same order of batches for every student.
        keras.utils.set_random_seed(2)
        model = causal_lm(*student_size, "student")
        model.set_weights(initial)
        return model

    scratch = student()
    scratch.compile(optimizer=keras.optimizers.Adam(3e-3), loss=ce)
    record("student from scratch", scratch, timed(lambda: fit_alone(scratch, x, y, weights)))

    def distill(label, distiller_class, target=y, **options):
        # The padding mask weighs the tokens (a cache leaves no room for a
        # per-token `sample_weight`).
        model = student()
        distiller = distiller_class(student=model, teacher=teacher, **options)
        distiller.compile(
            optimizer=keras.optimizers.Adam(3e-3), loss=ce, alpha=0.5, temperature=1.0, distillation_loss="kl"
        )
        record(
            label, model, timed(lambda: distiller.fit(x, target, batch_size=batch_size, epochs=args.epochs, verbose=0))
        )

    distill("off-policy KD, dense logits (Distiller)", kd.Distiller)
    cache = kd.precompute_teacher_outputs(teacher, x, batch_size=batch_size, top_k=args.top_k, dtype="float16")
    distill(f"off-policy KD, cached top-{args.top_k} bytes", kd.Distiller, target=kd.with_teacher_outputs(y, cache))
    distill("off-policy KD, chunked (CausalLMDistiller)", kd.CausalLMDistiller, chunk_size=args.length // 4)

    # Prompts: each window's first bytes. GKD continues them with the
    # student's samples half the time; sequence-level KD with the teacher's.
    prompt_weights = weights * (np.arange(args.length)[None, :] >= args.prompt - 1)
    model = student()
    gkd = kd.OnPolicyDistiller(student=model, teacher=teacher, lmbda=0.5, sampling_temperature=1.0, seed=0)
    gkd.compile(optimizer=keras.optimizers.Adam(3e-3), beta=0.5, temperature=1.0)
    record(
        "on-policy KD (OnPolicyDistiller, lmbda 0.5, beta 0.5)",
        model,
        timed(
            lambda: gkd.fit(x, y, sample_weight=prompt_weights, batch_size=batch_size, epochs=args.epochs, verbose=0)
        ),
    )

    prompt_mask = x["padding_mask"] & (np.arange(args.length)[None, :] < args.prompt)
    prompts = {"token_ids": np.where(prompt_mask, x["token_ids"], END), "padding_mask": prompt_mask}
    start = time.perf_counter()
    x_seq, y_seq, w_seq = kd.generate_distillation_data(teacher, prompts, batch_size=256)
    generation = time.perf_counter() - start
    model = student()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=ce)
    seconds = timed(lambda: fit_alone(model, x_seq, y_seq, w_seq))
    record(f"sequence-level KD (teacher's greedy text, {generation:.0f} s to generate)", model, generation + seconds)

    # A student with its own tokenizer: BPE trained on the training text.
    tokenizer = train_bpe(train, args.bpe_vocabulary)
    vocabulary = tokenizer.get_vocab_size()

    def encode(document):
        return tokenizer.encode(document.decode("utf-8", "replace")).ids

    bpe_length = args.length // 2
    x_bpe, y_bpe = to_sequences(train, bpe_length, encode)
    x_bpe_test, y_bpe_test = to_sequences(test, bpe_length, encode)
    tokens_per_byte = x_bpe_test["padding_mask"].sum() / x_test["padding_mask"].sum()
    bpe_weights = x_bpe["padding_mask"].astype("float32")
    keras.utils.set_random_seed(1)
    bpe_initial = causal_lm(*student_size, "bpe_student", vocabulary).get_weights()

    def bpe_student():
        keras.utils.set_random_seed(2)
        model = causal_lm(*student_size, "bpe_student", vocabulary)
        model.set_weights(bpe_initial)
        return model

    def bpe_perplexity(model):
        return perplexity(model, x_bpe_test, y_bpe_test, batch_size, tokens_per_byte)

    model = bpe_student()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=ce)
    seconds = timed(lambda: fit_alone(model, x_bpe, y_bpe, bpe_weights))
    record(f"BPE student ({vocabulary} tokens) from scratch", model, seconds, bpe_perplexity(model))
    model = bpe_student()
    cross = kd.Distiller(student=model, teacher=teacher, separate_teacher_inputs=True)
    cross.compile(optimizer=keras.optimizers.Adam(3e-3), loss=ce, alpha=0.5, temperature=1.0, distillation_loss="uld")
    paired = {"student": x_bpe, "teacher": teacher_bytes(tokenizer, x_bpe, args.length)}
    seconds = timed(
        lambda: cross.fit(
            paired, y_bpe, sample_weight=bpe_weights, batch_size=batch_size, epochs=args.epochs, verbose=0
        )
    )
    record("BPE student distilled from the byte teacher (ULD)", model, seconds, bpe_perplexity(model))

    lines = [
        f"Byte-level GPT-2 on {len(train)} documents ({x['padding_mask'].sum():,} training bytes), "
        f"held out {len(test)} documents ({x_test['padding_mask'].sum():,} bytes); "
        f"{args.epochs} epoch(s) each, batches of {batch_size}, sequences of {args.length} bytes "
        f"({bpe_length} BPE tokens, {1 / tokens_per_byte:.2f} bytes per token held out), prompts of "
        f"{args.prompt} bytes, alpha 0.5 and T = 1 where there are labels, backend {keras.backend.backend()}.",
        "",
        "| model | parameters | held-out perplexity per byte | training (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {params:,} | {value:.3f} | {seconds:.0f} |" for name, params, value, seconds in rows]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.output, "results.md"), "w") as handle:
        handle.write(text + "\n")
    byte_students = [row for row in rows[1:] if not row[0].startswith("BPE")]
    best = min(byte_students, key=lambda row: row[2])
    students[best[0]].save(os.path.join(args.output, "student.keras"))
    return rows


if __name__ == "__main__":
    main()
