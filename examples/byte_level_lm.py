"""Distilling a byte-level GPT-2 language model on text that ships offline.

Documents: Debian's `fortunes` (one document per fortune, ~2.8 MB), or the
licence texts under /usr/share/common-licenses where fortunes is missing.
Tokens are bytes (vocabulary 256; byte 0 ends a document and pads).
A teacher `keras_hub.models.GPT2CausalLM` (random init) is trained on the
next byte, then students half its depth and width, all for the same
epochs: from scratch, distilled with forward KL, reverse KL, and forward
KL on the teacher's cached top-k bytes. Reports held-out perplexity per
byte (exp of the mean cross-entropy over real tokens).

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


def to_sequences(documents, length):
    """`{"token_ids", "padding_mask"}` inputs and next-byte labels, `(n, length)`.

    Each document (plus its end byte) is cut into windows of `length + 1`
    bytes; a short window is padded, and its padding mask marks the input
    positions whose label is a real byte or the end byte.
    """
    import numpy as np

    windows = []
    for document in documents:
        data = np.frombuffer(document, dtype=np.uint8).astype("int32")
        data = np.concatenate([data, [END]])
        for start in range(0, max(len(data) - 1, 1), length):
            windows.append(data[start : start + length + 1])
    tokens = np.full((len(windows), length + 1), END, dtype="int32")
    mask = np.zeros((len(windows), length), dtype=bool)
    for row, window in enumerate(windows):
        tokens[row, : len(window)] = window
        mask[row, : len(window) - 1] = True
    return {"token_ids": tokens[:, :-1], "padding_mask": mask}, tokens[:, 1:]


def perplexity(model, x, labels, batch_size):
    """exp(mean cross-entropy per real token), float64 in NumPy."""
    import numpy as np

    logits = model.predict(x, batch_size=batch_size, verbose=0).astype("float64")
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    mask = x["padding_mask"]
    return math.exp(float((nll * mask).sum() / mask.sum()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--quick", action="store_true", help="tiny models and data, one epoch")
    parser.add_argument("--train-bytes", type=int, default=600_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--text-dir", help="directory of text files (default: fortunes, else licences)")
    parser.add_argument("--output", default="lm-output", help="directory for the table and the student")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if args.quick:
        args.train_bytes, args.epochs, args.length = 20_000, 1, 32
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras
    import keras_hub
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

    def causal_lm(layers, width, name):
        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=256,
            num_layers=layers,
            num_heads=max(width // 32, 1),
            hidden_dim=width,
            intermediate_dim=4 * width,
            max_sequence_length=args.length,
            dropout=0.0,
            name=f"{name}_backbone",
        )
        return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None, name=name)

    teacher_size, student_size = ((2, 32), (1, 16)) if args.quick else ((4, 128), (2, 64))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batch_size = 32
    rows = []

    keras.utils.set_random_seed(0)
    teacher = causal_lm(*teacher_size, "teacher")
    teacher.compile(optimizer=keras.optimizers.Adam(3e-3), loss=ce)
    start = time.perf_counter()
    teacher.fit(x, y, sample_weight=x["padding_mask"].astype("float32"), batch_size=batch_size, epochs=args.epochs, verbose=0)
    rows.append(("teacher", teacher.count_params(), perplexity(teacher, x_test, y_test, batch_size), time.perf_counter() - start))

    keras.utils.set_random_seed(1)
    initial = causal_lm(*student_size, "student").get_weights()

    def student():
        model = causal_lm(*student_size, "student")
        model.set_weights(initial)
        return model

    scratch = student()
    scratch.compile(optimizer=keras.optimizers.Adam(3e-3), loss=ce)
    start = time.perf_counter()
    scratch.fit(x, y, sample_weight=x["padding_mask"].astype("float32"), batch_size=batch_size, epochs=args.epochs, verbose=0)
    rows.append(("student from scratch", scratch.count_params(), perplexity(scratch, x_test, y_test, batch_size), time.perf_counter() - start))

    cache = kd.precompute_teacher_outputs(teacher, x, batch_size=batch_size, top_k=args.top_k, dtype="float16")
    runs = [
        ("student distilled, forward KL", "kl", y),
        ("student distilled, reverse KL", "reverse_kl", y),
        (f"student distilled, forward KL on cached top-{args.top_k}", "kl", kd.with_teacher_outputs(y, cache)),
    ]
    best = None
    for label, divergence, target in runs:
        model = student()
        distiller = kd.Distiller(model, teacher)
        distiller.compile(
            optimizer=keras.optimizers.Adam(3e-3), loss=ce, alpha=0.5, temperature=1.0, distillation_loss=divergence
        )
        start = time.perf_counter()
        distiller.fit(x, target, batch_size=batch_size, epochs=args.epochs, verbose=0)
        value = perplexity(model, x_test, y_test, batch_size)
        rows.append((label, model.count_params(), value, time.perf_counter() - start))
        if best is None or value < best[1]:
            best = (model, value)

    lines = [
        f"Byte-level GPT-2 on {len(train)} documents ({x['padding_mask'].sum():,} training tokens), "
        f"held out {len(test)} documents ({x_test['padding_mask'].sum():,} tokens); "
        f"{args.epochs} epoch(s) each, sequences of {args.length} bytes, backend {keras.backend.backend()}.",
        "",
        "| model | parameters | held-out perplexity per byte | training (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {params:,} | {value:.3f} | {seconds:.0f} |" for name, params, value, seconds in rows]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.output, "results.md"), "w") as handle:
        handle.write(text + "\n")
    best[0].save(os.path.join(args.output, "student.keras"))
    return rows


if __name__ == "__main__":
    main()
