"""`fitnets`: hints for a deep, thin student (Romero et al., 2015).

The teacher is the CNN (`models.TEACHERS["cnn"]`, four convolutions and a
wide dense head); the student is a deeper, much thinner CNN (six
convolutions of 8 and 16 channels, no dense layer), as the paper's FitNets
are to their teachers. From the same initial weights and for the same total
epochs it is trained on the labels alone, with soft targets alone
(`Distiller`), and with FitNets' two stages (`HintDistiller`): a hint stage
in which its first block's output, through a learned 1x1 convolution,
regresses the teacher's first block's output, then soft targets for the
remaining epochs.
"""

import time

import keras
import numpy as np

from keras_distill import Distiller
from keras_distill import HintDistiller
from reproductions import models
from reproductions import report

NAME = "fitnets"
TITLE = "Hints for a deep, thin student (FitNets, Romero et al., 2015)"
PAPER = (
    "CIFAR-10: a FitNet (19 layers, 2.5M parameters) trained with hints "
    "91.61% vs its 9M-parameter teacher 90.18%; the same deep students "
    "trained with soft targets alone did worse or failed to train."
)
SETTINGS = {
    "full": {
        "blocks": ((8, 8, 8), (16, 16, 16)),
        "epochs": 10,
        "hint_epochs": 2,
        "batch_size": 128,
        "temperature": 4.0,
        "alpha": 0.5,
    },
    "quick": {
        "blocks": ((4, 4), (8, 8)),
        "epochs": 2,
        "hint_epochs": 1,
        "batch_size": 128,
        "temperature": 4.0,
        "alpha": 0.5,
    },
}


def run(data, settings, seeds, output):
    start = time.perf_counter()
    epochs, hint_epochs = settings["epochs"], settings["hint_epochs"]
    hint, guided = "cnn_teacher_pool1", "student_pool1"
    fit = dict(batch_size=settings["batch_size"], verbose=0, validation_data=(data.x_test, data.y_test))
    kd_settings = dict(
        loss=models.loss(), metrics=models.metrics(), alpha=settings["alpha"], temperature=settings["temperature"]
    )
    runs = ("labels only", "soft targets (Distiller)", "hints, then soft targets (HintDistiller)")
    curves = {run_name: [] for run_name in runs}
    teacher_accuracy = []
    for seed in seeds:
        teacher = models.teacher(data, seed, kind="cnn")
        teacher_accuracy.append(models.accuracy(teacher, data.x_test, data.y_test))
        student = models.same_start(lambda: models.cnn(settings["blocks"], "student"), seed)
        scratch = models.compile_classifier(student())
        history = scratch.fit(data.x_train, data.y_train, epochs=epochs, **fit)
        curves[runs[0]].append(history.history["val_accuracy"])

        distiller = Distiller(student=student(), teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3), **kd_settings)
        history = distiller.fit(data.x_train, data.y_train, epochs=epochs, **fit)
        curves[runs[1]].append(history.history["val_accuracy"])

        hinted = HintDistiller(student=student(), teacher=teacher, hint_layer=hint, guided_layer=guided)
        hinted.compile(optimizer=keras.optimizers.Adam(1e-3), **kd_settings)
        hinted.fit_hints(data.x_train, epochs=hint_epochs, batch_size=settings["batch_size"], verbose=0)
        history = hinted.fit(data.x_train, data.y_train, epochs=epochs - hint_epochs, **fit)
        curves[runs[2]].append([np.nan] * hint_epochs + history.history["val_accuracy"])
        print(
            f"fitnets seed {seed}: " + ", ".join(f"{k} {100 * v[-1][-1]:.2f}%" for k, v in curves.items()), flush=True
        )

    params = scratch.count_params()
    rows = [("teacher", f"{teacher.count_params():,}", "-", "-", report.percent(teacher_accuracy))]
    for run_name in runs:
        final = [curve[-1] for curve in curves[run_name]]
        rows.append(
            (
                f"student, {run_name}",
                f"{params:,}",
                hint_epochs if run_name == runs[2] else 0,
                epochs,
                report.percent(final),
            )
        )
    table = report.markdown_table(["model", "parameters", "hint epochs", "total epochs", "test accuracy"], rows)

    fig, axes = report.figure()
    for run_name in runs:
        curve = np.asarray(curves[run_name], dtype="float64")
        axes.plot(np.arange(1, epochs + 1), 100 * curve.mean(0), marker=".", label=run_name)
    axes.axvspan(0.5, hint_epochs + 0.5, color="gray", alpha=0.15, label="hint stage")
    figure = report.save_figure(
        fig,
        axes,
        output,
        NAME,
        xlabel="epoch (hint-stage epochs included)",
        title=f"Thin CNN student, mean of {len(seeds)} seed(s)",
    )

    blocks = " | ".join("-".join(str(w) for w in block) for block in settings["blocks"])
    setup = (
        f"{data.describe()}; {len(seeds)} seed(s). Teacher: {models.describe_teacher('cnn', data)} "
        f"({teacher.count_params():,} parameters). Student: a thin CNN, 3x3 convolutions {blocks} "
        f"({params:,} parameters), {epochs} epochs in all, Adam 1e-3; hint: teacher `{hint}` -> student "
        f"`{guided}` through a 1x1-convolution regressor, {hint_epochs} epochs; soft targets "
        f"T = {settings['temperature']:g}, alpha = {settings['alpha']}."
    )
    final = {run_name: np.mean([c[-1] for c in curves[run_name]]) for run_name in runs}
    headline = (
        f"deep thin student: labels only {100 * final[runs[0]]:.2f}%, soft targets "
        f"{100 * final[runs[1]]:.2f}%, hints + soft targets {100 * final[runs[2]]:.2f}% "
        f"(teacher {100 * np.mean(teacher_accuracy):.2f}%)"
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)
