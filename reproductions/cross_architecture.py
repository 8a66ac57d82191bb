"""`cross-architecture`: a CNN teacher for an MLP student.

A convolutional teacher knows what the MLP student cannot infer from the
pixels alone (translation invariance, locality); its soft targets carry it.
The student 784-800-800-10 (no regularization) is trained from the same
initial weights and for the same epochs on the labels alone and distilled
from the teacher's cached logits.
"""

import time

import numpy as np

from reproductions import models
from reproductions import report

NAME = "cross-architecture"
TITLE = "A CNN teacher for an MLP student (cross-architecture)"
PAPER = (
    "Ba & Caruana (2014) and Urban et al. (2017): students without "
    "convolutions trained to mimic a deep CNN are more accurate than the same "
    "students trained on the labels (CIFAR-10: the best mimic MLP just under "
    "75%), yet stay below the convolutional teacher."
)
SETTINGS = {
    "full": {"student_units": (800, 800), "epochs": 12, "batch_size": 128, "temperature": 4.0, "alpha": 0.5},
    "quick": {"student_units": (32,), "epochs": 1, "batch_size": 128, "temperature": 4.0, "alpha": 0.5},
}


def run(data, settings, seeds, output):
    start = time.perf_counter()
    errors = {"teacher": [], "scratch": [], "distilled": []}
    teacher_seconds = []
    fit = dict(epochs=settings["epochs"], batch_size=settings["batch_size"])
    for seed in seeds:
        teacher, record = models.teacher_with_record(data, seed, kind="cnn")
        teacher_seconds.append(record["seconds"])
        student = models.same_start(lambda: models.mlp(settings["student_units"], "student"), seed)
        scratch = models.fit_student(student(), data, seed=seed, **fit)
        distilled = models.fit_student(
            student(),
            data,
            seed=seed,
            teacher=teacher,
            targets=models.cached_targets(teacher, data),
            alpha=settings["alpha"],
            temperature=settings["temperature"],
            **fit,
        )
        for key, model in (("teacher", teacher), ("scratch", scratch), ("distilled", distilled)):
            errors[key].append(models.errors(model, data.x_test, data.y_test))
        print(f"{NAME} seed {seed}: " + ", ".join(f"{k} {v[-1]}" for k, v in errors.items()), flush=True)

    n = len(data.y_test)
    fewer = report.relative_change(errors["scratch"], errors["distilled"])
    rows = [
        (
            "CNN teacher",
            f"{teacher.count_params():,}",
            report.mean_std(errors["teacher"], digits=1),
            report.percent([1 - e / n for e in errors["teacher"]]),
            "-",
        ),
        (
            "MLP student, labels only",
            f"{scratch.count_params():,}",
            report.mean_std(errors["scratch"], digits=1),
            report.percent([1 - e / n for e in errors["scratch"]]),
            "-",
        ),
        (
            "MLP student distilled from the CNN",
            f"{distilled.count_params():,}",
            report.mean_std(errors["distilled"], digits=1),
            report.percent([1 - e / n for e in errors["distilled"]]),
            fewer,
        ),
    ]
    table = report.markdown_table(
        ["model", "parameters", f"test errors (of {n:,})", "test accuracy", "errors vs labels only"], rows
    )
    figure = report.bar_figure(
        output,
        NAME,
        ["CNN\nteacher", "MLP student\nlabels only", "MLP student\ndistilled"],
        [errors[k] for k in ("teacher", "scratch", "distilled")],
        n,
    )
    units = "-".join(str(u) for u in settings["student_units"])
    setup = (
        f"{data.describe()}; {len(seeds)} seed(s), mean ± standard deviation. Teacher: "
        f"{models.describe_teacher('cnn', data)}, trained once per seed "
        f"({np.mean(teacher_seconds) / 60:.1f} min when trained). Student 784-{units}-10, no "
        f"regularization, {settings['epochs']} epochs, Adam 1e-3, batch {settings['batch_size']}, the "
        f"same initial weights and batches for both runs; distilled with T = {settings['temperature']:g}, "
        f"alpha = {settings['alpha']}, from the teacher's cached logits."
    )
    headline = (
        f"MLP student {np.mean(errors['scratch']):.0f} test errors alone, "
        f"{np.mean(errors['distilled']):.0f} distilled from a CNN ({fewer}); teacher "
        f"{np.mean(errors['teacher']):.0f}"
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)
