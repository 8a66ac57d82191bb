"""`ensemble`: an ensemble of separately trained models distilled into one.

Four MLPs 784-800-800-10, each trained with dropout from its own seed, are
the teacher (`Distiller(student=student, teacher=[...])` distills the mixture of
their softened distributions). The student, of the members' architecture
without dropout, is trained from the same initial weights and for the same
epochs on the labels alone and distilled from the members' cached logits.
"""

import time

import numpy as np

from reproductions import models
from reproductions import report

NAME = "ensemble"
TITLE = "An ensemble distilled into a single model (Hinton et al., 2015)"
PAPER = (
    "Speech recognition (Hinton et al., table 1): one model 58.9% frame "
    "accuracy and 10.9% word error rate; an ensemble of 10 such models 61.1% "
    "and 10.7%; a single model distilled from the ensemble 60.8% and 10.7%."
)
SETTINGS = {
    "full": {"student_units": (800, 800), "epochs": 12, "batch_size": 128, "temperature": 2.0, "alpha": 0.5},
    "quick": {"student_units": (32,), "epochs": 1, "batch_size": 128, "temperature": 2.0, "alpha": 0.5},
}


def run(data, settings, seeds, output):
    start = time.perf_counter()
    errors = {"member": [], "ensemble": [], "scratch": [], "distilled": []}
    fit = dict(epochs=settings["epochs"], batch_size=settings["batch_size"])
    for seed in seeds:
        members = models.ensemble(data, seed)
        student = models.same_start(lambda: models.mlp(settings["student_units"], "student"), seed)
        scratch = models.fit_student(student(), data, seed=seed, **fit)
        distilled = models.fit_student(
            student(),
            data,
            seed=seed,
            teacher=members,
            targets=models.cached_targets(members, data),
            alpha=settings["alpha"],
            temperature=settings["temperature"],
            **fit,
        )
        errors["member"].append(float(np.mean([models.errors(m, data.x_test, data.y_test) for m in members])))
        errors["ensemble"].append(models.ensemble_errors(members, data.x_test, data.y_test))
        errors["scratch"].append(models.errors(scratch, data.x_test, data.y_test))
        errors["distilled"].append(models.errors(distilled, data.x_test, data.y_test))
        print(f"{NAME} seed {seed}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in errors.items()), flush=True)

    n = len(data.y_test)
    fewer = report.relative_change(errors["scratch"], errors["distilled"])
    params = scratch.count_params()
    labels = {
        "member": "one member (mean of the members)",
        "ensemble": f"the ensemble of {len(members)} (probabilities averaged)",
        "scratch": "student, labels only",
        "distilled": "student distilled from the ensemble",
    }
    sizes = {"member": params, "ensemble": len(members) * params, "scratch": params, "distilled": params}
    rows = [
        (
            labels[k],
            f"{sizes[k]:,}",
            report.mean_std(errors[k], digits=1),
            report.percent([1 - e / n for e in errors[k]]),
            fewer if k == "distilled" else "-",
        )
        for k in errors
    ]
    table = report.markdown_table(
        ["model", "parameters", f"test errors (of {n:,})", "test accuracy", "errors vs labels only"], rows
    )
    figure = report.bar_figure(
        output,
        NAME,
        ["ensemble", "one member", "student\nlabels only", "student\ndistilled"],
        [errors[k] for k in ("ensemble", "member", "scratch", "distilled")],
        n,
    )
    units = "-".join(str(u) for u in settings["student_units"])
    setup = (
        f"{data.describe()}; {len(seeds)} seed(s), mean ± standard deviation. Teacher: "
        f"{models.describe_teacher('ensemble', data)}. Student 784-{units}-10 without dropout, "
        f"{settings['epochs']} epochs, Adam 1e-3, batch {settings['batch_size']}, the same initial weights and "
        f"batches for both runs; distilled with T = {settings['temperature']:g}, alpha = {settings['alpha']}, "
        "towards the mixture of the members' softened distributions, from their cached logits."
    )
    headline = (
        f"ensemble {np.mean(errors['ensemble']):.0f} test errors, one member "
        f"{np.mean(errors['member']):.0f}; the student {np.mean(errors['scratch']):.0f} alone, "
        f"{np.mean(errors['distilled']):.0f} distilled from the ensemble ({fewer})"
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)
