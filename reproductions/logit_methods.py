"""`logit-methods`: KD, DKD, logit standardization and DIST, side by side.

On the same teacher/student pairs, from the same initial weights, for the
same epochs and from the same cached teacher logits, each method's settings
taken from its authors (the distiller's `alpha` weighting the labels):
- KD: T = 4, alpha = 0.5;
- DKD (Zhao et al.): alpha_TCKD = 1, beta_NCKD = 8, T = 4, alpha = 0.5, the
  distillation term warmed up linearly over the first epochs;
- + LS (Sun et al.): logits standardized before the softmax, T = 2; KD + LS
  weights the labels 0.1 : 9 as the authors do (alpha = 0.01);
- DIST (Huang et al.): beta = gamma = 2, T = 4 (their CIFAR settings),
  alpha = 0.5.
"""

import time

import numpy as np

from keras_distill import callbacks
from keras_distill import losses
from reproductions import models
from reproductions import report

NAME = "logit-methods"
TITLE = "Logit methods compared: KD, DKD, logit standardization, DIST"
PAPER = (
    "CIFAR-100, ResNet32x4 -> ResNet8x4 (mdistiller and the logit-standardization "
    "README): student alone 72.50, KD 73.33, DKD 76.32, KD + LS 76.62, DKD + LS 77.01; "
    "DIST (Huang et al.) 76.31."
)
METHODS = {
    "KD": {"distillation_loss": "kl", "temperature": 4.0, "alpha": 0.5},
    "DKD": {"distillation_loss": "dkd", "temperature": 4.0, "alpha": 0.5, "warmup": True},
    "KD + LS": {"distillation_loss": "kl", "temperature": 2.0, "alpha": 0.01, "standardize_logits": True},
    "DKD + LS": {
        "distillation_loss": "dkd",
        "temperature": 2.0,
        "alpha": 0.5,
        "standardize_logits": True,
        "warmup": True,
    },
    # The loss object carries its temperature: compile() takes it from there.
    "DIST": {"distillation_loss": {"class_name": "DIST", "beta": 2.0, "gamma": 2.0, "temperature": 4.0}, "alpha": 0.5},
}
SETTINGS = {
    "full": {"mlp_units": (800, 800), "cnn_blocks": ((8,), (16,)), "epochs": 12, "warmup_epochs": 2, "batch_size": 128},
    "quick": {"mlp_units": (32,), "cnn_blocks": ((4,), (8,)), "epochs": 1, "warmup_epochs": 1, "batch_size": 128},
}


def _loss(spec):
    if isinstance(spec, dict):
        options = {key: value for key, value in spec.items() if key != "class_name"}
        return getattr(losses, spec["class_name"])(**options)
    return spec


def run(data, settings, seeds, output):
    start = time.perf_counter()
    students = {
        "CNN -> MLP": lambda: models.mlp(settings["mlp_units"], "student"),
        "CNN -> small CNN": lambda: models.cnn(settings["cnn_blocks"], "student"),
    }
    runs = ("labels only", *METHODS)
    errors = {(pair, run_name): [] for pair in students for run_name in runs}
    teacher_errors = []
    fit = dict(epochs=settings["epochs"], batch_size=settings["batch_size"])
    for seed in seeds:
        teacher = models.teacher(data, seed, kind="cnn")
        teacher_errors.append(models.errors(teacher, data.x_test, data.y_test))
        targets = models.cached_targets(teacher, data)
        for pair, build in students.items():
            student = models.same_start(build, seed)
            for run_name in runs:
                if run_name == "labels only":
                    model = models.fit_student(student(), data, seed=seed, **fit)
                else:
                    method = dict(METHODS[run_name])
                    warmup = method.pop("warmup", False)
                    method["distillation_loss"] = _loss(method["distillation_loss"])
                    schedule = (
                        [
                            callbacks.AlphaScheduler(
                                callbacks.linear_warmup(settings["warmup_epochs"], end=method["alpha"])
                            )
                        ]
                        if warmup
                        else []
                    )
                    model = models.fit_student(
                        student(),
                        data,
                        seed=seed,
                        teacher=teacher,
                        targets=targets,
                        callbacks=schedule,
                        **method,
                        **fit,
                    )
                errors[(pair, run_name)].append(models.errors(model, data.x_test, data.y_test))
            print(
                f"{NAME} seed {seed} {pair}: "
                + ", ".join(f"{run_name} {errors[(pair, run_name)][-1]}" for run_name in runs),
                flush=True,
            )

    n = len(data.y_test)
    header = (
        ["method"]
        + [f"{pair}: test errors (of {n:,})" for pair in students]
        + [f"{pair}: vs labels only" for pair in students]
    )
    rows = []
    for run_name in runs:
        cells = [report.mean_std(errors[(pair, run_name)], digits=1) for pair in students]
        changes = [
            "-"
            if run_name == "labels only"
            else report.relative_change(errors[(pair, "labels only")], errors[(pair, run_name)])
            for pair in students
        ]
        rows.append((run_name, *cells, *changes))
    rows.append(("CNN teacher", *[report.mean_std(teacher_errors, digits=1)] * len(students), "-", "-"))
    table = report.markdown_table(header, rows)

    fig, axes = report.figure(width=7.5)
    width = 0.8 / len(students)
    for index, pair in enumerate(students):
        means = [np.mean(errors[(pair, r)]) for r in runs]
        spreads = [report.spread(errors[(pair, r)]) for r in runs]
        axes.bar(np.arange(len(runs)) + index * width, means, width, yerr=spreads, capsize=3, label=pair)
    axes.set_xticks(np.arange(len(runs)) + width * (len(students) - 1) / 2, [r.replace(" + ", "\n+ ") for r in runs])
    low = min(min(v) for v in errors.values())
    axes.set_ylim(0.85 * low, None)
    figure = report.save_figure(
        fig, axes, output, NAME, ylabel=f"test errors (of {n:,})", title=f"Mean ± std of {len(seeds)} seed(s)"
    )

    blocks = " | ".join("-".join(str(w) for w in block) for block in settings["cnn_blocks"])
    units = "-".join(str(u) for u in settings["mlp_units"])
    setup = (
        f"{data.describe()}; {len(seeds)} seed(s), mean ± standard deviation; relative changes are per "
        f"seed. Teacher: {models.describe_teacher('cnn', data)}. Students: MLP 784-{units}-10 and a small CNN "
        f"({blocks} channels, no dense layer), {settings['epochs']} epochs, Adam 1e-3, batch "
        f"{settings['batch_size']}, the same initial weights and batches for every run of a seed; "
        f"warm-up over {settings['warmup_epochs']} epoch(s). Settings per method: "
        + "; ".join(f"{k}: {_describe(v)}" for k, v in METHODS.items())
        + "."
    )
    best = {pair: min(METHODS, key=lambda m: np.mean(errors[(pair, m)])) for pair in students}
    headline = "; ".join(
        f"{pair}: labels only {np.mean(errors[(pair, 'labels only')]):.0f} errors, KD "
        f"{np.mean(errors[(pair, 'KD')]):.0f}, DKD {np.mean(errors[(pair, 'DKD')]):.0f}, best {best[pair]} "
        f"{np.mean(errors[(pair, best[pair])]):.0f}"
        for pair in students
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)


def _describe(method):
    loss = method["distillation_loss"]
    if isinstance(loss, str):
        parts = [loss, f"T = {method['temperature']:g}"]
    else:
        options = ", ".join(f"{k}={v:g}" for k, v in loss.items() if k not in ("class_name", "temperature"))
        parts = [f"{loss['class_name']}({options})", f"T = {loss['temperature']:g}"]
    parts.append(f"alpha = {method['alpha']}")
    if method.get("standardize_logits"):
        parts.append("standardized")
    if method.get("warmup"):
        parts.append("warm-up")
    return ", ".join(parts)
