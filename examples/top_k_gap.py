"""Why the cached top-k teacher paid less than the dense one, separated: the
number of kept tokens (k = 8, 32, 64 of 256) and the order of the batches
(the cache in memory, read in the dense run's order, against the same cache
streamed from disk shard by shard).

The corpus, the students from scratch and the teacher are those of
`examples/stdlib_lm.py` (from the teacher store when it trained it before).
For each seed, the same student from the same initial weights, distilled for
the same steps with the same loss (forward KL, alpha 0.5, T = 1):

- from the dense teacher logits (`kd.Distiller`, the teacher run live);
- the same logits cached on disk in float16 and streamed
  (`kd.CachedTeacherOutputs`, shards in their own order, the same for
  every cache of a seed);
- for each k: the teacher's top-k log-probabilities cached in memory
  (`kd.precompute_teacher_outputs(top_k=k)`, `kd.with_teacher_outputs`),
  whose examples are shuffled with the inputs, so batch for batch in the
  dense run's order; and the same cache written to disk and streamed,
  in the disk order of the dense row above.

    python examples/top_k_gap.py --backend jax [--quick]
"""

import os
import sys
import time

EXAMPLES = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EXAMPLES)

import stdlib_lm  # noqa: E402


def main(argv=None):
    parser = stdlib_lm.make_parser()
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--ks", default="8,32,64", help="the top-k sizes, comma-separated")
    parser.set_defaults(output="top-k-gap-output")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",") if k]
    env = stdlib_lm.prepare(args)
    keras = env.keras

    import keras_distill as kd

    x, y, teacher, timed = env.x, env.y, env.teacher, env.timed
    options = dict(loss=env.ce, alpha=0.5, temperature=1.0, distillation_loss="kl")
    memory, disk, cache_seconds = {}, {}, {}
    for k in ks:
        start = time.perf_counter()
        memory[k] = kd.precompute_teacher_outputs(teacher, x, batch_size=64, top_k=k, dtype="float16")
        cache_seconds[k] = time.perf_counter() - start
        disk[k] = os.path.join(args.output, f"cache_top_{k}")
        kd.precompute_teacher_outputs(
            teacher,
            x,
            batch_size=64,
            top_k=k,
            dtype="float16",
            directory=disk[k],
            shard_size=args.batch_size * max(args.steps // 4, 1),
            overwrite=True,
        )

    # The full logits too, in float16 and in the same shards: the dense
    # teacher in the disk path's batch order.
    disk["dense"] = os.path.join(args.output, "cache_dense")
    kd.precompute_teacher_outputs(
        teacher,
        x,
        batch_size=64,
        dtype="float16",
        directory=disk["dense"],
        shard_size=args.batch_size * max(args.steps // 4, 1),
        overwrite=True,
    )

    results = {}

    def distilled(method, seed, data):
        distiller = kd.Distiller(student=env.student(seed), teacher=teacher)
        distiller.compile(optimizer=env.optimizer(args.steps), **options)
        seconds = timed(distiller.fit, *data, batch_size=args.batch_size, epochs=1, verbose=0)
        value, after = env.held_out_perplexity(distiller.student)
        results.setdefault(method, []).append((value, seconds))
        print(f"seed {seed}, {method}: {value:.3f} in {seconds:.0f} s", flush=True)

    for seed in range(args.seeds):
        distilled("dense logits", seed, (x, y))
        streamed = kd.CachedTeacherOutputs(disk["dense"], x, y, batch_size=args.batch_size, seed=seed, teacher=teacher)
        distilled("dense logits (float16), streamed from disk (shard order)", seed, (streamed,))
        for k in ks:
            in_order = (x, kd.with_teacher_outputs(y, memory[k]))
            distilled(f"top-{k}, in memory (the dense run's batch order)", seed, in_order)
            streamed = kd.CachedTeacherOutputs(disk[k], x, y, batch_size=args.batch_size, seed=seed, teacher=teacher)
            distilled(f"top-{k}, streamed from disk (shard order)", seed, (streamed,))

    scratch = env.scratch_mean
    dense = stdlib_lm.summary([row[0] for row in results["dense logits"]])[0]
    lines = [
        f"The students, teacher and held-out bytes of stdlib_lm.py; backend {keras.backend.backend()}; seeds "
        f"0-{args.seeds - 1}; {args.steps} steps of {args.batch_size} windows; forward KL, alpha 0.5, T = 1. "
        f"Caches in float16, written in {', '.join(f'{s:.0f} s (k = {k})' for k, s in cache_seconds.items())}. "
        f"Students from scratch: {scratch:.3f}.",
        "",
        "| teacher outputs | held-out perplexity per byte | per seed | against scratch | against dense "
        "| training (s) |",
        "|---|---|---|---|---|---|",
    ]
    table = {"scratch": scratch}
    for method, values in results.items():
        mean, deviation = stdlib_lm.summary([row[0] for row in values])
        seconds = stdlib_lm.summary([row[1] for row in values])[0]
        lines.append(
            f"| {method} | {mean:.3f} ± {deviation:.3f} | {', '.join(f'{row[0]:.3f}' for row in values)} "
            f"| {mean / scratch - 1:+.1%} | {100 * (mean - dense) / scratch:+.1f} points | {seconds:.0f} |"
        )
        table[method] = {"perplexity": [row[0] for row in values], "mean": mean, "change": mean / scratch - 1}
    within = [m for m in results if m != "dense logits" and table[m]["change"] - (dense / scratch - 1) <= 0.03]
    lines += ["", f"Within 3 points of dense: {', '.join(within) if within else 'none'}."]
    stdlib_lm.save_results(args.output, lines, table)
    return table


if __name__ == "__main__":
    main()
