"""`fsp`: faster optimization after an FSP stage (Yim et al., 2017).

A convolutional teacher (three 3x3 convolutions per block) is trained on
the labels. A shallower student with the teacher's channel counts (two
convolutions per block) is trained on the labels from the same initial
weights twice: from scratch, and after an FSP stage in which its FSP
matrices (between the first and last convolution of each block) regress
the teacher's. The experiment counts the label epochs each needs to reach
a fixed test accuracy.
"""

import dataclasses
import time

import keras
import numpy as np

from keras_distill import FSPDistiller
from reproductions import models
from reproductions import report

NAME = "fsp"
TITLE = "Fast optimization after an FSP stage (Yim et al., 2017)"
PAPER = (
    "CIFAR-10, ResNets: after the FSP stage the student reaches in about a "
    "third of the iterations (21k) the accuracy normal training reaches "
    "in 63k."
)
SETTINGS = {
    "full": {
        "train_size": 10000,
        "teacher_blocks": ((8, 8, 8), (16, 16, 16)),
        "student_blocks": ((8, 8), (16, 16)),
        "teacher_epochs": 15,
        "epochs": 8,
        "fsp_epochs": 3,
        "batch_size": 128,
        "threshold": 0.82,
    },
    "quick": {
        "train_size": 1000,
        "teacher_blocks": ((4, 4, 4), (8, 8, 8)),
        "student_blocks": ((4, 4), (8, 8)),
        "teacher_epochs": 1,
        "epochs": 2,
        "fsp_epochs": 1,
        "batch_size": 128,
        "threshold": 0.3,
    },
}
PAIRS = [
    (("teacher_conv1", "teacher_conv3"), ("student_conv1", "student_conv2")),
    (("teacher_conv4", "teacher_conv6"), ("student_conv3", "student_conv4")),
]


def epochs_to_reach(curve, threshold):
    """1-based index of the first epoch at or above `threshold`, or None."""
    for epoch, value in enumerate(curve, start=1):
        if value >= threshold:
            return epoch
    return None


def run(data, settings, seeds, output):
    start = time.perf_counter()
    size = settings["train_size"]
    subset = dataclasses.replace(data, x_train=data.x_train[:size], y_train=data.y_train[:size])
    x_train, y_train, x_test = subset.x_train, subset.y_train, data.x_test
    fit = dict(
        epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=0, validation_data=(x_test, data.y_test)
    )
    threshold = settings["threshold"]
    runs = ("labels only", "FSP stage, then labels (FSPDistiller)")
    curves = {run_name: [] for run_name in runs}
    teacher_accuracy = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        teacher_settings = {
            "blocks": settings["teacher_blocks"],
            "epochs": settings["teacher_epochs"],
            "batch_size": settings["batch_size"],
        }
        teacher, _ = models.trained(
            "fsp teacher",
            "fsp_teacher",
            lambda: models.cnn(settings["teacher_blocks"], "teacher"),
            subset,
            seed,
            teacher_settings,
        )
        teacher_accuracy.append(models.accuracy(teacher, x_test, data.y_test))
        student = models.same_start(lambda: models.cnn(settings["student_blocks"], "student"), seed)
        scratch = models.compile_classifier(student())
        curves[runs[0]].append(scratch.fit(x_train, y_train, **fit).history["val_accuracy"])
        distiller = FSPDistiller(student=student(), teacher=teacher, pairs=PAIRS)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=models.loss(), metrics=models.metrics())
        distiller.fit_fsp(x_train, epochs=settings["fsp_epochs"], batch_size=settings["batch_size"], verbose=0)
        curves[runs[1]].append(distiller.fit(x_train, y_train, **fit).history["val_accuracy"])
        print(
            f"fsp seed {seed}: teacher {100 * teacher_accuracy[-1]:.2f}%, "
            + ", ".join(f"{k} " + " ".join(f"{100 * a:.1f}" for a in v[-1]) for k, v in curves.items()),
            flush=True,
        )

    # Per run, the label epochs of the seeds that reached the threshold.
    hits = {
        run_name: [e for e in (epochs_to_reach(c, threshold) for c in curves[run_name]) if e is not None]
        for run_name in runs
    }

    def reached(run_name):
        text = report.mean_std(hits[run_name], digits=1) if hits[run_name] else "-"
        return f"{text} ({len(hits[run_name])} of {len(seeds)} seeds reached it)"

    rows = [("teacher", "-", "-", report.percent(teacher_accuracy))]
    for run_name, stage in zip(runs, (0, settings["fsp_epochs"])):
        rows.append(
            (f"student, {run_name}", stage, reached(run_name), report.percent([c[-1] for c in curves[run_name]]))
        )
    table = report.markdown_table(
        [
            "model",
            "FSP-stage epochs",
            f"label epochs to reach {100 * threshold:.0f}% test accuracy",
            f"test accuracy after {settings['epochs']} label epochs",
        ],
        rows,
    )

    fig, axes = report.figure()
    for run_name in runs:
        curve = 100 * np.asarray(curves[run_name], dtype="float64")
        epochs = np.arange(1, settings["epochs"] + 1)
        axes.plot(epochs, curve.mean(0), marker=".", label=run_name)
        if len(seeds) > 1:
            axes.fill_between(epochs, curve.min(0), curve.max(0), alpha=0.15)
    axes.axhline(100 * threshold, color="gray", linestyle=":", label="fixed accuracy")
    figure = report.save_figure(
        fig,
        axes,
        output,
        NAME,
        xlabel="label epoch (after the FSP stage, if any)",
        title=f"Mean (band: min to max) of {len(seeds)} seed(s)",
    )

    def widths(blocks):
        return " | ".join("-".join(str(w) for w in block) for block in blocks)

    setup = (
        f"Fashion-MNIST, the first {len(x_train):,} training images, {len(x_test):,} "
        f"test images; {len(seeds)} seed(s). Teacher convolutions "
        f"{widths(settings['teacher_blocks'])} ({teacher.count_params():,} parameters, "
        f"{settings['teacher_epochs']} epochs), student "
        f"{widths(settings['student_blocks'])} ({scratch.count_params():,}); FSP stage "
        f"{settings['fsp_epochs']} epochs on two layer pairs, then labels only "
        "(the paper's stage 2), Adam 1e-3."
    )
    mean_epochs = {k: np.mean(v) if v else float("nan") for k, v in hits.items()}
    headline = (
        f"label epochs to reach {100 * threshold:.0f}%: {mean_epochs[runs[0]]:.1f} from "
        f"scratch vs {mean_epochs[runs[1]]:.1f} after {settings['fsp_epochs']} FSP "
        f"epochs; after {settings['epochs']} label epochs "
        f"{100 * np.mean([c[-1] for c in curves[runs[0]]]):.2f}% vs "
        f"{100 * np.mean([c[-1] for c in curves[runs[1]]]):.2f}%"
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)
