"""The 2026 recipe for a small language model, measured: a student cut from
its teacher, then on-policy distillation after off-policy distillation.

The corpus, the students from scratch and the teacher are those of
`examples/stdlib_lm.py` (byte-level GPT-2 on the Python standard library's
source; the teacher comes from the teacher store when that example, or this
one, trained it before). Then, for each seed:

1. Where the student starts. The same architecture, distilled the same
   way (dense logits, `kd.Distiller`, forward KL, alpha 0.5, T = 1) for the
   same steps on the same windows: from its random initial weights, and
   cut from the teacher (`kd.cut_student`: the teacher's 2 most important
   layers of 4, its most important heads, MLP units and hidden channels on
   a calibration batch, weights copied). The cut student on the labels
   alone shows what the cut itself brings.
2. What comes after. From the distilled student (random start), the same
   number of further steps on fresh windows, three ways with the same loss
   (the generalized JSD, beta 0.5, on the bytes after each window's prompt)
   and the same learning rate: off-policy on the data (`kd.Distiller`),
   on-policy half the time (`kd.OnPolicyDistiller`, lmbda 0.5) and always
   (lmbda 1.0).

Every student is measured two ways: held-out perplexity per byte, and what
on-policy distillation optimizes (`kd.on_policy_divergence`): the student
continues held-out prompts, and the teacher's per-token reverse KL of the
sampled bytes, the same prompts and random draws for every model.

    python examples/lm_recipe.py --backend jax [--quick]
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
    parser.add_argument("--continue-steps", type=int, default=200, help="steps after the off-policy checkpoint")
    parser.add_argument("--continue-rate", type=float, default=1e-3, help="peak learning rate of the continuation")
    parser.add_argument("--judged", type=int, default=256, help="held-out prompts the teacher judges")
    parser.add_argument(
        "--parts",
        default="cut,continue",
        help="what to run, comma-separated: cut (students cut at the student's size), continue (the "
        "continuations), wide (students of the teacher's width and half its layers, random and cut)",
    )
    parser.set_defaults(output="lm-recipe-output")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= {"cut", "continue", "wide"}:
        parser.error(f"--parts takes cut, continue and wide. Received: {args.parts!r}")
    quick = args.quick
    env = stdlib_lm.prepare(args)
    if quick:
        args.continue_steps, args.judged = 4, 16
    keras, np = env.keras, env.np

    import keras_distill as kd

    x, y, x_all, y_all, x_test = env.x, env.y, env.x_all, env.y_all, env.x_test
    teacher, optimizer, timed, fit_plain = env.teacher, env.optimizer, env.timed, env.fit_plain
    layers, width = env.student_size
    # The continuation's windows: the next ones after the students' own.
    count = args.continue_steps * args.batch_size
    rows = np.arange(env.examples, env.examples + count) % len(y_all)
    x_more, y_more = {k: v[rows] for k, v in x_all.items()}, y_all[rows]
    more_weights = x_more["padding_mask"].astype("float32") * env.past_prompt
    judge_x = {k: v[: args.judged] for k, v in x_test.items()}
    judge_weights = (x_test["padding_mask"][: args.judged] & env.past_prompt).astype("float32")

    def judged(model):
        return kd.on_policy_divergence(model, teacher, judge_x, judge_weights, batch_size=64, seed=0)

    rows_by_method = {}  # method -> [(perplexity, after the prompt, reverse KL, teacher NLL, seconds)]

    def record(method, seed, model, seconds):
        value, after = env.held_out_perplexity(model)
        judgement = judged(model)
        rows_by_method.setdefault(method, []).append(
            (value, after, judgement["reverse_kl"], judgement["teacher_nll"], seconds, model.count_params())
        )
        print(
            f"seed {seed}, {method}: perplexity {value:.3f} ({after:.3f} after the prompt), on-policy reverse KL "
            f"{judgement['reverse_kl']:.4f}, teacher NLL {judgement['teacher_nll']:.3f}, {seconds:.0f} s",
            flush=True,
        )

    kd_options = dict(loss=env.ce, alpha=0.5, temperature=1.0, distillation_loss="kl")
    jsd = kd.losses.GeneralizedJSD(beta=0.5, temperature=1.0)
    calibration = {k: v[:256] for k, v in x.items()}

    def cut(seed, size=(layers, width)):
        keras.utils.set_random_seed(seed)
        return kd.cut_student(
            teacher,
            num_layers=size[0],
            layers="importance",
            num_heads=max(size[1] // 32, 1),
            hidden_dim=size[1],
            intermediate_dim=4 * size[1],
            calibration=calibration,
            name="student_backbone",
        )

    def distil(method, seed, model, extra_seconds=0.0):
        distiller = kd.Distiller(student=model, teacher=teacher)
        distiller.compile(optimizer=optimizer(args.steps), **kd_options)
        keras.utils.set_random_seed(seed)
        seconds = timed(distiller.fit, x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        record(method, seed, model, extra_seconds + seconds)
        return model

    wide = (layers, env.teacher_size[1])

    for seed in range(args.seeds):
        # 1. Where the student starts: random or cut, distilled the same way.
        if parts & {"cut", "continue"}:
            checkpoint = distil("distilled, random start", seed, env.student(seed))
        if "cut" in parts:
            start = time.perf_counter()
            cut_student = cut(seed)
            cut_seconds = time.perf_counter() - start
            record("cut from the teacher, before training", seed, cut_student, cut_seconds)
            alone = cut(seed)
            alone.compile(optimizer=optimizer(args.steps), loss=env.ce)
            keras.utils.set_random_seed(seed)
            record("cut, labels only", seed, alone, cut_seconds + timed(fit_plain, alone, x, y, env.weights))
            distil("cut, distilled", seed, cut(seed), cut_seconds)
        if "wide" in parts:
            keras.utils.set_random_seed(100 + seed)
            distil(f"{wide[0]} layers x {wide[1]}: distilled, random start", seed, env.causal_lm(wide, "student"))
            start = time.perf_counter()
            model = cut(seed, wide)
            distil(f"{wide[0]} layers x {wide[1]}: cut, distilled", seed, model, time.perf_counter() - start)
        if "continue" not in parts:
            continue

        # 2. What comes after: the same further steps from the checkpoint.
        saved = checkpoint.get_weights()

        def from_checkpoint(saved=saved, seed=seed):
            model = env.causal_lm(env.student_size, "student")
            model.set_weights(saved)
            keras.utils.set_random_seed(1000 + seed)
            return model

        off = kd.Distiller(student=from_checkpoint(), teacher=teacher)
        off.compile(
            optimizer=optimizer(args.continue_steps, args.continue_rate),
            loss=None,
            alpha=0.0,
            distillation_loss=jsd,
        )
        seconds = timed(
            off.fit, x_more, y_more, sample_weight=more_weights, batch_size=args.batch_size, epochs=1, verbose=0
        )
        record("+ off-policy (Distiller, JSD)", seed, off.student, seconds)
        for lmbda in (0.5, 1.0):
            gkd = kd.OnPolicyDistiller(
                student=from_checkpoint(), teacher=teacher, lmbda=lmbda, sampling_temperature=1.0, seed=seed
            )
            gkd.compile(optimizer=optimizer(args.continue_steps, args.continue_rate), beta=0.5, temperature=1.0)
            seconds = timed(
                gkd.fit, x_more, y_more, sample_weight=more_weights, batch_size=args.batch_size, epochs=1, verbose=0
            )
            record(f"+ on-policy (OnPolicyDistiller, lmbda {lmbda})", seed, gkd.student, seconds)

    scratch_values = [row[0] for row in env.results["student from scratch"]]
    scratch_mean = env.scratch_mean
    judged_scratch = []
    lines = [
        f"Byte-level GPT-2 on the Python standard library (the corpus, teacher and students of stdlib_lm.py); "
        f"backend {keras.backend.backend()}; seeds 0-{args.seeds - 1}. Students {layers} layers x {width}, "
        f"{args.steps} steps of {args.batch_size} windows; teacher {env.teacher_size[0]} layers x "
        f"{env.teacher_size[1]} ({env.rounds[-1] / scratch_mean - 1:+.1%} against scratch). Continuations: "
        f"{args.continue_steps} further steps on fresh windows, peak rate {args.continue_rate:g}, JSD beta 0.5 on "
        f"the bytes after {args.prompt}-byte prompts. On-policy reverse KL: the teacher's per-byte "
        f"KL(student || teacher) on the student's samples after {args.judged} held-out prompts "
        "(temperature 1, the same draws for every model; lower is better).",
        "",
        "| student | parameters | held-out perplexity per byte | against scratch | after the prompt "
        "| on-policy reverse KL | teacher NLL of the samples | time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table = {"student from scratch": {"perplexity": scratch_values, "mean": scratch_mean}}
    for seed in range(args.seeds):
        model = env.student(seed)
        model.set_weights(env.trained_scratch[seed])
        judged_scratch.append(judged(model))
    table["student from scratch"]["reverse_kl"] = [value["reverse_kl"] for value in judged_scratch]
    lines.append(
        f"| from scratch (labels only) | {sum(w.size for w in env.initial[0]):,} "
        f"| {scratch_mean:.3f} ± {stdlib_lm.summary(scratch_values)[1]:.3f} | +0.0% "
        f"| {env.scratch_after:.3f} | {stdlib_lm.summary(table['student from scratch']['reverse_kl'])[0]:.4f} "
        f"| {stdlib_lm.summary([v['teacher_nll'] for v in judged_scratch])[0]:.3f} "
        f"| {stdlib_lm.summary([row[2] for row in env.results['student from scratch']])[0]:.0f} |"
    )
    for method, values in rows_by_method.items():
        mean, deviation = stdlib_lm.summary([row[0] for row in values])
        after = stdlib_lm.summary([row[1] for row in values])[0]
        kl, kl_deviation = stdlib_lm.summary([row[2] for row in values])
        nll = stdlib_lm.summary([row[3] for row in values])[0]
        seconds = stdlib_lm.summary([row[4] for row in values])[0]
        lines.append(
            f"| {method} | {values[0][5]:,} | {mean:.3f} ± {deviation:.3f} | {mean / scratch_mean - 1:+.1%} "
            f"| {after:.3f} "
            f"| {kl:.4f} ± {kl_deviation:.4f} | {nll:.3f} | {seconds:.0f} |"
        )
        table[method] = {
            "perplexity": [row[0] for row in values],
            "mean": mean,
            "reverse_kl": [row[2] for row in values],
            "reverse_kl_mean": kl,
            "teacher_nll": [row[3] for row in values],
        }
    lines.append("")
    if "continue" in parts:
        start_kl = table["distilled, random start"]["reverse_kl_mean"]
        off_row = table["+ off-policy (Distiller, JSD)"]
        for lmbda in (0.5, 1.0):
            on_row = table[f"+ on-policy (OnPolicyDistiller, lmbda {lmbda})"]
            lowered, off_lowered = start_kl - on_row["reverse_kl_mean"], start_kl - off_row["reverse_kl_mean"]
            perplexity_gap = on_row["mean"] / off_row["mean"] - 1
            met = lowered > off_lowered and perplexity_gap <= 0.03
            lines.append(
                f"lmbda {lmbda}: on-policy reverse KL lowered by {lowered:+.5f} against {off_lowered:+.5f} "
                f"off-policy, held-out perplexity {perplexity_gap:+.1%} against the off-policy continuation "
                f"(target: lowered more, at most +3%: {'met' if met else 'MISSED'})."
            )
    comparisons = [("cut, distilled", "distilled, random start")]
    comparisons.append(
        (f"{wide[0]} layers x {wide[1]}: cut, distilled", f"{wide[0]} layers x {wide[1]}: distilled, random start")
    )
    for cut_method, random_method in comparisons:
        if cut_method in table and random_method in table:
            change = table[cut_method]["mean"] / table[random_method]["mean"] - 1
            lines.append(
                f"{cut_method}: {change:+.1%} perplexity against {random_method} "
                f"(target -10%: {'met' if change <= -0.10 else 'MISSED'})."
            )
    stdlib_lm.save_results(args.output, lines, table)
    return table


if __name__ == "__main__":
    main()
