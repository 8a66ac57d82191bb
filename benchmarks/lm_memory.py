"""Peak memory and step time of the language-model loss path, full logits
against `CausalLMDistiller`'s chunks.

The loss path: from the two models' final hidden states `(batch, sequence,
hidden)` and output embeddings `(vocabulary, hidden)` to the loss
`alpha * CE + (1 - alpha) * T^2 * KL` over the real tokens, and its
gradient with respect to the student's hidden states and embedding. The
backbones are left out on purpose (tiny backbones: the logits dominate).
Dense computes both `(batch, sequence, vocabulary)` logits at once; chunked
is `keras_distill.distillers.causal_lm_distiller.chunked_token_losses`,
`--chunk` tokens at a time with `keras.remat`.

Peak memory is XLA's own account of the compiled gradient function
(`memory_analysis()`: temporaries plus outputs, the inputs excluded), so the
JAX backend is required; step time is the median of `--runs` calls.
TensorFlow and PyTorch compute the same loss and gradients (tested to 1e-5)
but expose no comparable peak figure here.

    python benchmarks/lm_memory.py [--quick] [--output FILE]
"""

import argparse
import os
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocabularies", default="32768,131072")
    parser.add_argument("--sequence", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="vocabulary 2048, sequence 64, 2 runs")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = "jax"
    if args.quick:
        args.vocabularies, args.sequence, args.chunk, args.runs = "2048", 64, 16, 2
    import jax
    import keras
    import numpy as np
    from keras import ops

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if keras.backend.backend() != "jax":
        raise SystemExit("benchmarks/lm_memory.py measures XLA's memory analysis: run it with KERAS_BACKEND=jax.")
    from keras_distill.distillers.causal_lm_distiller import chunked_token_losses
    from keras_distill.losses.lookup import get as get_loss

    kl = get_loss("kl")
    kl.temperature = 2.0
    alpha = 0.5

    def token_losses(student_hidden, student_embedding, teacher_hidden, teacher_embedding, labels, weights):
        student_logits = ops.matmul(student_hidden, ops.transpose(student_embedding))
        teacher_logits = ops.matmul(teacher_hidden, ops.transpose(teacher_embedding))
        cross_entropy = ops.sparse_categorical_crossentropy(labels, student_logits, from_logits=True)
        return ops.sum(cross_entropy * weights), ops.sum(kl.call(teacher_logits, student_logits) * weights)

    def dense(student_hidden, student_embedding, teacher_hidden, teacher_embedding, labels, weights):
        ce, divergence = token_losses(
            student_hidden, student_embedding, teacher_hidden, teacher_embedding, labels, weights
        )
        return (alpha * ce + (1 - alpha) * divergence) / ops.sum(weights)

    def chunked(student_hidden, student_embedding, teacher_hidden, teacher_embedding, labels, weights):
        def chunk(h_s, h_t, y, w):
            return token_losses(h_s, student_embedding, h_t, teacher_embedding, y, w)

        ce, divergence = chunked_token_losses(student_hidden, teacher_hidden, labels, weights, chunk, args.chunk)
        return (alpha * ce + (1 - alpha) * divergence) / ops.sum(weights)

    rows, lines = [], []
    for vocabulary in [int(v) for v in args.vocabularies.split(",")]:
        rng = np.random.default_rng(0)
        shape = (args.batch, args.sequence, args.hidden)
        inputs = (
            rng.normal(size=shape).astype("float32"),
            (rng.normal(size=(vocabulary, args.hidden)) * 0.05).astype("float32"),
            rng.normal(size=shape).astype("float32"),
            (rng.normal(size=(vocabulary, args.hidden)) * 0.05).astype("float32"),
            rng.integers(0, vocabulary, shape[:2]).astype("int32"),
            (rng.uniform(size=shape[:2]) < 0.9).astype("float32"),
        )
        measured = {}
        for name, function in (("dense", dense), ("chunked", chunked)):
            step = jax.jit(jax.value_and_grad(function, argnums=(0, 1)))
            compiled = step.lower(*inputs).compile()
            analysis = compiled.memory_analysis()
            peak = analysis.temp_size_in_bytes + analysis.output_size_in_bytes
            try:
                value, gradients = compiled(*inputs)
                jax.block_until_ready(gradients)
            except jax.errors.JaxRuntimeError as error:
                if "RESOURCE_EXHAUSTED" not in str(error):
                    raise
                # The device cannot hold it: reported as such, with the peak
                # XLA planned for it.
                measured[name] = (peak, None, None, None)
                continue
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                jax.block_until_ready(compiled(*inputs))
                times.append(time.perf_counter() - start)
            measured[name] = (peak, float(np.median(times)), float(value), [np.asarray(g) for g in gradients])
        (dense_peak, dense_time, dense_value, dense_grads) = measured["dense"]
        (chunk_peak, chunk_time, chunk_value, chunk_grads) = measured["chunked"]
        if dense_time is None or chunk_time is None:
            difference = loss_difference = None
        else:
            difference = max(float(np.max(np.abs(a - b))) for a, b in zip(dense_grads, chunk_grads))
            loss_difference = abs(dense_value - chunk_value)
        rows.append((vocabulary, dense_peak, chunk_peak, dense_time, chunk_time, loss_difference, difference))
    lines = [
        f"Loss path only, JAX {jax.__version__} on {jax.devices()[0].platform.upper()}, Keras {keras.__version__}: "
        f"batch {args.batch}, sequence {args.sequence}, hidden {args.hidden}, chunk {args.chunk} tokens, "
        f"alpha {alpha}, T = 2; peak = XLA temporaries + outputs of the compiled value-and-gradient function; "
        f"time = median of {args.runs} runs.",
        "",
        "| vocabulary | dense peak | chunked peak | ratio | dense step | chunked step | ratio | loss diff "
        "| max grad diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for vocabulary, dense_peak, chunk_peak, dense_time, chunk_time, loss_difference, difference in rows:
        memory_ratio = chunk_peak / dense_peak
        if dense_time is None or chunk_time is None:
            peaks = f"{dense_peak / 2**20:,.0f} MiB | {chunk_peak / 2**20:,.0f} MiB | {memory_ratio:.2f}"
            lines.append(
                f"| {vocabulary:,} | {peaks} | "
                + " | ".join("out of memory" if t is None else f"{1000 * t:,.0f} ms" for t in (dense_time, chunk_time))
                + " | - | - | - |"
            )
            verdicts.append(
                f"vocabulary {vocabulary:,}: memory {memory_ratio:.2f}x; the "
                + ("dense" if dense_time is None else "chunked")
                + " step ran out of device memory"
            )
            continue
        time_ratio = chunk_time / dense_time
        lines.append(
            f"| {vocabulary:,} | {dense_peak / 2**20:,.0f} MiB | {chunk_peak / 2**20:,.0f} MiB | {memory_ratio:.2f} | "
            f"{1000 * dense_time:,.0f} ms | {1000 * chunk_time:,.0f} ms | {time_ratio:.2f} | {loss_difference:.1e} | "
            f"{difference:.1e} |"
        )
        verdicts.append(
            f"vocabulary {vocabulary:,}: memory {memory_ratio:.2f}x <= 0.3x "
            f"{'met' if memory_ratio <= 0.3 else 'MISSED'}, time {time_ratio:.2f}x <= 1.3x "
            f"{'met' if time_ratio <= 1.3 else 'MISSED'}"
        )
    lines += ["", "Targets: " + "; ".join(verdicts) + "."]
    text = "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    return rows


if __name__ == "__main__":
    main()
