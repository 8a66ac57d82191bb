"""`hinton`: soft targets and the temperature (Hinton et al., 2015, sec. 3).

Hinton's MNIST teacher made half its student's errors. On Fashion-MNIST an
MLP teacher of the paper's size is barely better than the student, so the
teacher here is the CNN (`models.TEACHERS["cnn"]`, about 7% test error
against the student's 11%). The student (two hidden layers of 800 units,
no regularization) learns once from the labels alone and once per
temperature from the teacher's soft targets plus the labels, every student
from the same initial weights and for the same epochs. The teacher's logits
are computed once (`precompute_teacher_outputs`), so each distilled run
costs what the student alone costs.
"""

import time

import keras
import numpy as np

from keras_distill import Distiller
from keras_distill import precompute_teacher_outputs
from keras_distill import with_teacher_outputs
from reproductions import models
from reproductions import report

NAME = "hinton"
TITLE = "Soft targets at several temperatures (Hinton et al., 2015)"
PAPER = (
    "MNIST: teacher (2 x 1200, dropout) 67 test errors; student "
    "(2 x 800, no regularization) 146; the student distilled at T = 20: 74."
)
SETTINGS = {
    "full": {"student_units": 800, "epochs": 8, "batch_size": 256, "temperatures": (1, 2, 4, 8, 20), "alpha": 0.1},
    "quick": {"student_units": 32, "epochs": 1, "batch_size": 256, "temperatures": (1, 2, 4, 8, 20), "alpha": 0.1},
}


def run(data, settings, seeds, output):
    start = time.perf_counter()
    temperatures = settings["temperatures"]
    errors = {"teacher": [], "scratch": [], **{t: [] for t in temperatures}}
    fit = dict(epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=0)
    for seed in seeds:
        teacher = models.teacher(data, seed, kind="cnn")
        errors["teacher"].append(models.errors(teacher, data.x_test, data.y_test))
        cached = with_teacher_outputs(data.y_train, precompute_teacher_outputs(teacher, data.x_train, batch_size=1000))
        student = models.same_start(lambda: models.mlp([settings["student_units"]] * 2, "student"), seed)
        scratch = models.compile_classifier(student())
        scratch.fit(data.x_train, data.y_train, **fit)
        errors["scratch"].append(models.errors(scratch, data.x_test, data.y_test))
        for temperature in temperatures:
            distilled = student()
            distiller = Distiller(student=distilled, teacher=teacher)
            distiller.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss=models.loss(),
                metrics=models.metrics(),
                alpha=settings["alpha"],
                temperature=float(temperature),
            )
            distiller.fit(data.x_train, cached, **fit)
            errors[temperature].append(models.errors(distilled, data.x_test, data.y_test))
        print(f"hinton seed {seed}: " + ", ".join(f"{k} {v[-1]}" for k, v in errors.items()), flush=True)

    n = len(data.y_test)
    teacher_params = teacher.count_params()
    student_params = scratch.count_params()
    rows = [
        (
            "CNN teacher, labels",
            f"{teacher_params:,}",
            "-",
            report.mean_std(errors["teacher"], digits=1),
            report.percent([1 - e / n for e in errors["teacher"]]),
        ),
        (
            "student, labels only",
            f"{student_params:,}",
            "-",
            report.mean_std(errors["scratch"], digits=1),
            report.percent([1 - e / n for e in errors["scratch"]]),
        ),
    ]
    for temperature in temperatures:
        rows.append(
            (
                f"student distilled, T = {temperature}",
                f"{student_params:,}",
                settings["alpha"],
                report.mean_std(errors[temperature], digits=1),
                report.percent([1 - e / n for e in errors[temperature]]),
            )
        )
    table = report.markdown_table(["model", "parameters", "alpha", f"test errors (of {n:,})", "test accuracy"], rows)
    best = min(temperatures, key=lambda t: np.mean(errors[t]))

    fig, axes = report.figure()
    means = [np.mean(errors[t]) for t in temperatures]
    spreads = [report.spread(errors[t]) for t in temperatures]
    axes.errorbar(temperatures, means, yerr=spreads, marker="o", capsize=3, label="distilled student")
    for key, style, label in (("scratch", "--", "student, labels only"), ("teacher", ":", "teacher")):
        axes.axhline(np.mean(errors[key]), linestyle=style, color="gray" if key == "teacher" else "C1", label=label)
    axes.set_xscale("log")
    axes.set_xticks(temperatures, [str(t) for t in temperatures])
    figure = report.save_figure(
        fig,
        axes,
        output,
        NAME,
        xlabel="temperature T",
        ylabel=f"test errors (of {n:,})",
        title=f"Fashion-MNIST, mean of {len(seeds)} seed(s)",
    )

    setup = (
        f"{data.describe()}; {len(seeds)} seed(s), mean ± standard deviation. "
        f"Teacher: {models.describe_teacher('cnn', data)}; students 784-{settings['student_units']}x2-10, "
        f"{settings['epochs']} epochs, Adam 1e-3, batch {settings['batch_size']}, "
        f"loss = {settings['alpha']} x cross-entropy + {1 - settings['alpha']:.1f} x T² KL, "
        "from the teacher's cached logits."
    )
    headline = (
        f"CNN teacher {np.mean(errors['teacher']):.0f} test errors, student "
        f"{np.mean(errors['scratch']):.0f}, distilled {np.mean(errors[best]):.0f} "
        f"(best T = {best}, {report.relative_change(errors['scratch'], errors[best])}) of {n:,}"
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)
