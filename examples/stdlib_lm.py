"""Does language-model distillation pay? Byte-level GPT-2 on the Python
standard library's source, 3 seeds.

The corpus is the `.py` files of the running Python's standard library
(tests and site-packages left out; about 11 MB with CPython 3.11), which
every machine with Python has offline. One file in 20 is held out. Tokens
are bytes (vocabulary 256; byte 0 ends a file and pads).

1. Three students from scratch (labels only; seeds 0, 1 and 2; each its
   own initial weights and order of batches) on the same 2 MB of
   training windows: their held-out perplexity is the bar.
2. A teacher four times deeper and twice as wide, trained in rounds of
   fresh windows from the whole training corpus and kept in the teacher
   store (`reproductions.teacher_store`: a rerun loads it) until its
   held-out perplexity is 15% or more below the students' mean, or
   `--max-rounds` is reached (the table says which).
3. For each seed, the same student from the same initial weights, for the
   same number of steps on the same windows, distilled:
   - dense logits (`kd.Distiller`, forward KL, alpha 0.5, T = 1);
   - the teacher's top-k bytes cached on disk once and streamed
     (`precompute_teacher_outputs(directory=)`, `kd.CachedTeacherOutputs`);
   - chunked over the sequence (`kd.CausalLMDistiller`);
   - on-policy (GKD, `kd.OnPolicyDistiller`: half the batches continue
     each window's prompt with the student's own samples, JSD 0.5);
   - sequence-level (`kd.generate_distillation_data`: the teacher's sampled
     continuations of the prompts of a quarter of the windows, trained for
     as many steps).

Reports held-out perplexity per byte (exp of the mean cross-entropy over the
held-out bytes, end bytes included), mean ± standard deviation over the
seeds, its change against scratch, the same over the bytes after each
window's first `--prompt` (the on-policy and sequence-level losses skip the
prompt, so their students never learn its positions), and training times.

    python examples/stdlib_lm.py --backend jax [--quick]
"""

import argparse
import json
import os
import sys
import sysconfig
import time
import types

EXAMPLES = os.path.dirname(os.path.abspath(__file__))
SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
CHANGE_TARGET = 0.85  # the teacher trains until 15% below scratch


def load_corpus(root=None, limit=None):
    """`[(relative path, bytes)]` of the standard library's `.py` files,
    sorted, without tests or installed packages (`limit`: stop after that
    many bytes)."""
    root = root or sysconfig.get_paths()["stdlib"]
    files, total = [], 0
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d not in SKIP)
        for name in sorted(names):
            path = os.path.join(directory, name)
            if not name.endswith(".py") or os.path.islink(path):
                continue
            with open(path, "rb") as handle:
                text = handle.read().replace(b"\0", b"").strip()
            if len(text) > 8:
                files.append((os.path.relpath(path, root), text))
                total += len(text) + 1
            if limit and total >= limit:
                return files
    if not files:
        raise FileNotFoundError(f"No Python source under {root!r}. Pass --stdlib DIRECTORY.")
    return files


def summary(values):
    """`(mean, sample standard deviation)`."""
    import numpy as np

    values = np.asarray(values, "float64")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def save_results(output, lines, table):
    """Prints the table's lines and writes them (`results.md`) and the
    numbers (`results.json`) into `output`."""
    text = "\n".join(lines)
    print(text)
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "results.md"), "w") as handle:
        handle.write(text + "\n")
    with open(os.path.join(output, "results.json"), "w") as handle:
        json.dump(table, handle, indent=1)


def make_parser():
    """The example's options (`examples/lm_recipe.py` adds its own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"))
    parser.add_argument("--quick", action="store_true", help="tiny models and data, for the tests")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500, help="training steps of every student")
    parser.add_argument("--round-steps", type=int, default=1000, help="teacher steps per round")
    parser.add_argument("--max-rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=32, help="prompt bytes of the on-policy and sequence-level runs")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--held-out", type=int, default=2048, help="held-out windows")
    parser.add_argument("--stdlib", help="directory of Python source (default: this Python's standard library)")
    parser.add_argument("--teacher-store", help="where trained teachers are kept (default: the teacher store's)")
    parser.add_argument("--output", default="stdlib-lm-output", help="directory for the tables and the cache")
    return parser


def prepare(args):
    """The corpus, the students' initial weights, the students from
    scratch and the teacher (trained in rounds, or loaded from the teacher
    store): everything the tables compare against, as a namespace."""
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    limit = None
    if args.quick:
        limit, args.steps, args.round_steps, args.max_rounds = 150_000, 6, 12, 2
        args.batch_size, args.length, args.prompt, args.top_k, args.held_out = 8, 32, 8, 4, 32
    sys.path.insert(0, os.path.dirname(EXAMPLES))
    sys.path.insert(0, EXAMPLES)
    import keras
    import numpy as np
    from byte_level_lm import gpt2
    from byte_level_lm import to_sequences
    from byte_level_lm import token_losses

    from reproductions import teacher_store

    os.makedirs(args.output, exist_ok=True)
    files = load_corpus(args.stdlib, limit)
    order = np.random.default_rng(0).permutation(len(files))
    held_out = {int(i) for i in order[: max(len(files) // 20, 1)]}
    x_all, y_all = to_sequences([text for i, (_, text) in enumerate(files) if i not in held_out], args.length)
    x_test, y_test = to_sequences([text for i, (_, text) in enumerate(files) if i in held_out], args.length)
    shuffled = np.random.default_rng(1).permutation(len(y_all))
    x_all, y_all = {k: v[shuffled] for k, v in x_all.items()}, y_all[shuffled]
    test_rows = np.random.default_rng(2).permutation(len(y_test))[: args.held_out]
    x_test, y_test = {k: v[test_rows] for k, v in x_test.items()}, y_test[test_rows]
    examples = args.steps * args.batch_size
    if examples > len(y_all):
        raise ValueError(f"--steps {args.steps} x --batch-size {args.batch_size} exceeds the {len(y_all)} windows.")
    x, y = {k: v[:examples] for k, v in x_all.items()}, y_all[:examples]
    weights = x["padding_mask"].astype("float32")
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    teacher_size, student_size = ((2, 32), (1, 16)) if args.quick else ((4, 128), (2, 64))

    def causal_lm(size, name):
        return gpt2(*size, name, args.length)

    def optimizer(steps, rate=3e-3):
        # A new one per run: linear warm-up over the first 5% of the steps,
        # cosine decay to a tenth, gradients clipped to a global norm of 1.
        # Without them, the same top-8 student ended 11.63 with one order of
        # batches and 14.71 with another.
        warmup = max(steps // 20, 1)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, max(steps - warmup, 1), alpha=0.1, warmup_target=rate, warmup_steps=warmup
        )
        return keras.optimizers.Adam(schedule, global_clipnorm=1.0)

    # The positions after each window's first `prompt` bytes: the only ones
    # on-policy and sequence-level students learn (their losses skip the
    # prompt). Held-out perplexity is reported over every byte and over these.
    past_prompt = np.arange(args.length)[None, :] >= args.prompt - 1
    after_prompt = x_test["padding_mask"] & past_prompt

    def held_out_perplexity(model):
        losses = token_losses(model, x_test, y_test, 64)
        every = x_test["padding_mask"]
        return tuple(float(np.exp((losses * m).sum() / m.sum())) for m in (every, after_prompt))

    def timed(fit, *fit_args, **fit_options):
        start = time.perf_counter()
        fit(*fit_args, **fit_options)
        return time.perf_counter() - start

    def fit_plain(model, inputs, labels, sample_weight, epochs=1):
        # keras-hub's `CausalLM.fit` batches arrays without shuffling them;
        # `keras.Model.fit` shuffles every epoch, as the distillers' fit does.
        return keras.Model.fit(
            model, inputs, labels, sample_weight=sample_weight, batch_size=args.batch_size, epochs=epochs, verbose=0
        )

    print(
        f"{len(files) - len(held_out)} training files ({x_all['padding_mask'].sum():,} bytes, {len(y_all):,} "
        f"windows of {args.length}); students train on {examples:,} windows ({x['padding_mask'].sum():,} bytes); "
        f"{len(y_test):,} held-out windows ({x_test['padding_mask'].sum():,} bytes) from {len(held_out)} other files.",
        flush=True,
    )
    initial = {}
    for seed in range(args.seeds):
        keras.utils.set_random_seed(100 + seed)
        initial[seed] = causal_lm(student_size, "student").get_weights()

    def student(seed):
        model = causal_lm(student_size, "student")
        model.set_weights(initial[seed])
        keras.utils.set_random_seed(seed)  # the same order of batches for every method of a seed
        return model

    results = {}  # method -> list of (perplexity, after the prompt, seconds)

    def record(method, seed, model, seconds):
        value, after = held_out_perplexity(model)
        results.setdefault(method, []).append((value, after, seconds))
        print(f"seed {seed}, {method}: {value:.3f} ({after:.3f} after the prompt) in {seconds:.0f} s", flush=True)

    trained_scratch = []  # their weights, for examples/lm_recipe.py
    for seed in range(args.seeds):
        model = student(seed)
        model.compile(optimizer=optimizer(args.steps), loss=ce)
        record("student from scratch", seed, model, timed(fit_plain, model, x, y, weights))
        trained_scratch.append(model.get_weights())
    scratch_mean, _ = summary([row[0] for row in results["student from scratch"]])
    scratch_after, _ = summary([row[1] for row in results["student from scratch"]])

    # The teacher: rounds of `round_steps` on fresh windows, each kept in the
    # teacher store, until it is 15% below the scratch students.
    store = args.teacher_store or teacher_store.default_directory()
    round_examples = args.round_steps * args.batch_size
    teacher, teacher_seconds, rounds = None, 0.0, []
    for round_number in range(1, args.max_rounds + 1):
        start = (round_number - 1) * round_examples % len(y_all)
        rows = np.arange(start, start + round_examples) % len(y_all)
        previous = teacher

        def build():
            keras.utils.set_random_seed(7)
            model = causal_lm(teacher_size, "teacher")
            model.compile(optimizer=optimizer(args.round_steps, 2e-3), loss=ce)
            return model

        def fit_round(model, previous=previous, rows=rows, round_number=round_number):
            if previous is not None:
                model.set_weights(previous.get_weights())
            keras.utils.set_random_seed(round_number)
            fit_plain(model, {k: v[rows] for k, v in x_all.items()}, y_all[rows], x_all["padding_mask"][rows])

        teacher, stored = teacher_store.trained(
            "stdlib_lm_teacher",
            build,
            fit_round,
            key={
                "data": y_all,
                "round": round_number,
                "round_steps": args.round_steps,
                "batch": args.batch_size,
                "optimizer": "Adam 2e-3, 5% warm-up, cosine to a tenth, global clipnorm 1",
            },
            directory=store,
        )
        teacher_seconds += stored["seconds"]
        value, teacher_after = held_out_perplexity(teacher)
        rounds.append(value)
        print(
            f"teacher round {round_number} ({'loaded' if stored['loaded'] else 'trained'}): {value:.3f}, "
            f"{value / scratch_mean - 1:+.1%} against scratch",
            flush=True,
        )
        if value <= CHANGE_TARGET * scratch_mean:
            break

    return types.SimpleNamespace(**{name: value for name, value in locals().items() if name != "args"})


def main(argv=None):
    args = make_parser().parse_args(argv)
    env = prepare(args)
    keras, np = env.keras, env.np
    from byte_level_lm import END

    import keras_distill as kd

    x, y, weights, x_all, x_test, examples = env.x, env.y, env.weights, env.x_all, env.x_test, env.examples
    files, held_out, past_prompt, initial = env.files, env.held_out, env.past_prompt, env.initial
    ce, optimizer, timed, fit_plain, student, record = (
        env.ce,
        env.optimizer,
        env.timed,
        env.fit_plain,
        env.student,
        env.record,
    )
    results, teacher, rounds, teacher_after, teacher_seconds = (
        env.results,
        env.teacher,
        env.rounds,
        env.teacher_after,
        env.teacher_seconds,
    )
    scratch_mean, scratch_after, student_size, teacher_size = (
        env.scratch_mean,
        env.scratch_after,
        env.student_size,
        env.teacher_size,
    )

    def distill(method, seed, distiller, data, **fit_options):
        model = distiller.student
        seconds = timed(distiller.fit, *data, batch_size=args.batch_size, epochs=1, verbose=0, **fit_options)
        record(method, seed, model, seconds)

    def compiled(distiller, **options):
        distiller.compile(optimizer=optimizer(args.steps), **options)
        return distiller

    kd_options = dict(loss=ce, alpha=0.5, temperature=1.0, distillation_loss="kl")
    # Written once (resumable, checked against this teacher), streamed by every seed.
    cache = os.path.join(args.output, "teacher_cache")
    shard = args.batch_size * max(args.steps // 4, 1)
    start = time.perf_counter()
    kd.precompute_teacher_outputs(
        teacher, x, batch_size=64, top_k=args.top_k, dtype="float16", directory=cache, shard_size=shard, overwrite=True
    )
    cache_seconds = time.perf_counter() - start
    # Prompts: each window's first bytes. GKD continues them with the
    # student's samples half the time; sequence-level KD with the teacher's.
    prompt_weights = weights * past_prompt
    quarter = max(examples // 4, args.batch_size)
    prompt_mask = x["padding_mask"][:quarter] & (np.arange(args.length)[None, :] < args.prompt)
    prompts = {"token_ids": np.where(prompt_mask, x["token_ids"][:quarter], END), "padding_mask": prompt_mask}
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    x_seq, y_seq, w_seq = kd.generate_distillation_data(teacher, prompts, batch_size=256, sampler="random")
    generation_seconds = time.perf_counter() - start
    seq_epochs = -(-examples // quarter)

    top_k = f"cached top-{args.top_k} from disk"
    for seed in range(args.seeds):
        distill(
            "dense logits (Distiller)",
            seed,
            compiled(kd.Distiller(student=student(seed), teacher=teacher), **kd_options),
            (x, y),
        )
        model = student(seed)
        streamed = kd.CachedTeacherOutputs(cache, x, y, batch_size=args.batch_size, seed=seed, teacher=teacher)
        distill(top_k, seed, compiled(kd.Distiller(student=model, teacher=teacher), **kd_options), (streamed,))
        chunked = kd.CausalLMDistiller(student=student(seed), teacher=teacher, chunk_size=args.length // 4)
        distill("chunked (CausalLMDistiller)", seed, compiled(chunked, **kd_options), (x, y))
        gkd = kd.OnPolicyDistiller(
            student=student(seed), teacher=teacher, lmbda=0.5, sampling_temperature=1.0, seed=seed
        )
        gkd.compile(optimizer=optimizer(args.steps), beta=0.5, temperature=1.0)
        distill("on-policy (OnPolicyDistiller)", seed, gkd, (x, y), sample_weight=prompt_weights)
        model = student(seed)
        model.compile(optimizer=optimizer(args.steps), loss=ce)
        seconds = timed(fit_plain, model, x_seq, y_seq, w_seq, epochs=seq_epochs)
        record("sequence-level (teacher's samples)", seed, model, seconds)

    teacher_value = rounds[-1]
    lines = [
        f"Byte-level GPT-2 on the Python {sys.version.split()[0]} standard library's source: "
        f"{len(files) - len(held_out):,} training files ({x_all['padding_mask'].sum():,} bytes), "
        f"held-out perplexity per byte on {x_test['padding_mask'].sum():,} bytes of {len(held_out)} other files; "
        f"backend {keras.backend.backend()}. Every student: {student_size[0]} layers x {student_size[1]}, "
        f"{args.steps} steps of {args.batch_size} windows of {args.length} bytes "
        f"({x['padding_mask'].sum():,} bytes), Adam 3e-3 (5% warm-up, cosine decay to a tenth, global norm "
        f"clipped to 1), the same initial weights and batches for every method of a seed; seeds "
        f"0-{args.seeds - 1}. Teacher: {teacher_size[0]} layers x {teacher_size[1]}, {len(rounds)} round(s) of "
        f"{args.round_steps} steps (Adam 2e-3, the same schedule per round; "
        f"{teacher_value / scratch_mean - 1:+.1%} against scratch; target -15%"
        f"{'' if teacher_value <= CHANGE_TARGET * scratch_mean else ', NOT reached within --max-rounds'}). "
        f"Alpha 0.5 and T = 1 where there are labels; prompts of {args.prompt} bytes; cache written in "
        f"{cache_seconds:.0f} s, teacher's continuations of {quarter:,} prompts sampled in {generation_seconds:.0f} s "
        f"and trained on for {seq_epochs} epochs.",
        "",
        "| model | parameters | held-out perplexity per byte | per seed | against scratch "
        f"| after the first {args.prompt} bytes | against scratch | training (s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| teacher | {teacher.count_params():,} | {teacher_value:.3f} | - | {teacher_value / scratch_mean - 1:+.1%} "
        f"| {teacher_after:.3f} | {teacher_after / scratch_after - 1:+.1%} | {teacher_seconds:.0f} |",
    ]
    table = {
        "teacher": {
            "perplexity": teacher_value,
            "after_prompt": teacher_after,
            "rounds": rounds,
            "seconds": teacher_seconds,
        }
    }
    parameters = sum(weight.size for weight in initial[0])
    for method, values in results.items():
        mean, deviation = summary([row[0] for row in values])
        after, after_deviation = summary([row[1] for row in values])
        seconds = summary([row[2] for row in values])[0]
        change, after_change = mean / scratch_mean - 1, after / scratch_after - 1
        per_seed = ", ".join(f"{row[0]:.3f}" for row in values)
        lines.append(
            f"| {method} | {parameters:,} | {mean:.3f} ± {deviation:.3f} | {per_seed} | {change:+.1%} "
            f"| {after:.3f} ± {after_deviation:.3f} | {after_change:+.1%} | {seconds:.0f} |"
        )
        table[method] = {
            "perplexity": [row[0] for row in values],
            "mean": mean,
            "change": change,
            "after_prompt": [row[1] for row in values],
            "after_prompt_change": after_change,
        }
    best = min((m for m in results if m != "student from scratch"), key=lambda m: table[m]["mean"])
    lines += [
        "",
        f"Best distilled: {best}, {table[best]['change']:+.1%} against scratch "
        f"(target -5%: {'met' if table[best]['change'] <= -0.05 else 'MISSED'}).",
    ]
    save_results(args.output, lines, table)
    return table


if __name__ == "__main__":
    main()
