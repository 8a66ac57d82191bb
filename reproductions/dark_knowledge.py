"""`dark-knowledge`: a class the student never sees (Hinton et al., 2015, sec. 3).

The student is distilled from the MLP teacher on a transfer set from which
one class is removed entirely: it never sees an image of that class nor
its label, only the teacher's soft targets on the other classes' images.
Its test accuracy on the missing class is measured as trained, and again
after raising that class's output bias by the amount that maximizes
accuracy on held-out training images (the paper tuned the raise on the
test set). Raising the bias of the `logits` layer adds the same amount to
that class's logit for every input.
"""

import time

import keras
import numpy as np

from keras_distill import Distiller
from reproductions import models
from reproductions import report
from reproductions.data import CLASS_NAMES

NAME = "dark-knowledge"
TITLE = "Learning a class from soft targets alone (Hinton et al., 2015)"
PAPER = (
    "MNIST, every 3 removed from the transfer set: 206 test errors, 133 of "
    "them on the 1,010 threes (86.8% of threes correct); after raising the "
    "3's bias by 3.5, 109 errors, 14 on threes (98.6% correct)."
)
SETTINGS = {
    "full": {
        "omitted_class": 3,
        "student_units": 800,
        "epochs": 8,
        "batch_size": 256,
        "temperature": 8.0,
        "alpha": 0.1,
        "validation": 5000,
    },
    "quick": {
        "omitted_class": 3,
        "student_units": 32,
        "epochs": 1,
        "batch_size": 256,
        "temperature": 8.0,
        "alpha": 0.1,
        "validation": 500,
    },
}
SHIFTS = np.arange(0.0, 10.01, 0.1)


def _scores(logits, labels, omitted):
    predicted = np.argmax(logits, axis=-1)
    wrong = predicted != labels
    on_class = labels == omitted
    return int(wrong.sum()), int(wrong[on_class].sum()), float(np.mean(~wrong[on_class]))


def run(data, settings, seeds, output):
    start = time.perf_counter()
    omitted = settings["omitted_class"]
    split = len(data.x_train) - settings["validation"]
    x_val, y_val = data.x_train[split:], data.y_train[split:]
    keep = data.y_train[:split] != omitted
    x_transfer, y_transfer = data.x_train[:split][keep], data.y_train[:split][keep]
    onehot = np.eye(10, dtype="float32")[omitted]
    measured = {key: [] for key in ("before", "after", "shift", "teacher")}
    curves = []
    for seed in seeds:
        teacher = models.teacher(data, seed)
        measured["teacher"].append(_scores(models.predict_logits(teacher, data.x_test), data.y_test, omitted))
        keras.utils.set_random_seed(seed)
        student = models.mlp([settings["student_units"]] * 2, "student")
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=models.loss(),
            metrics=models.metrics(),
            alpha=settings["alpha"],
            temperature=settings["temperature"],
        )
        distiller.fit(x_transfer, y_transfer, epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=0)
        val_logits = models.predict_logits(student, x_val)
        val_accuracy = [np.mean(np.argmax(val_logits + s * onehot, -1) == y_val) for s in SHIFTS]
        shift = float(SHIFTS[int(np.argmax(val_accuracy))])
        test_logits = models.predict_logits(student, data.x_test)
        curves.append([_scores(test_logits + s * onehot, data.y_test, omitted) for s in SHIFTS])
        measured["before"].append(_scores(test_logits, data.y_test, omitted))
        bias = student.get_layer("logits").bias
        bias.assign(bias + shift * onehot)
        measured["after"].append(_scores(models.predict_logits(student, data.x_test), data.y_test, omitted))
        measured["shift"].append(shift)
        print(
            f"dark-knowledge seed {seed}: before {measured['before'][-1]}, bias +{shift}: {measured['after'][-1]}",
            flush=True,
        )

    n = len(data.y_test)
    n_class = int(np.sum(data.y_test == omitted))
    name = f"{omitted} ({CLASS_NAMES[omitted]})"

    def row(label, scores, shift="-"):
        return (
            label,
            shift,
            report.mean_std([s[0] for s in scores], digits=1),
            report.mean_std([s[1] for s in scores], digits=1),
            report.percent([s[2] for s in scores]),
        )

    table = report.markdown_table(
        [
            "model",
            "bias raise",
            f"test errors (of {n:,})",
            f"errors on class {name} (of {n_class:,})",
            f"class {omitted} correct",
        ],
        [
            row("teacher (saw every class)", measured["teacher"]),
            row(f"student distilled without class {omitted}", measured["before"]),
            row("the same, class bias raised", measured["after"], report.mean_std(measured["shift"])),
        ],
    )
    fig, axes = report.figure()
    curves = np.asarray(curves, dtype="float64")
    axes.plot(SHIFTS, 100 * curves[:, :, 2].mean(0), label=f"class {name} correct")
    axes.plot(SHIFTS, 100 * (1 - curves[:, :, 0].mean(0) / n), label="all classes correct")
    axes.axvline(np.mean(measured["shift"]), color="gray", linestyle=":", label="raise chosen on held-out images")
    figure = report.save_figure(
        fig,
        axes,
        output,
        NAME,
        xlabel=f"raise of class {omitted}'s output bias",
        title=f"Student that never saw class {name}, mean of {len(seeds)} seed(s)",
    )

    setup = (
        f"{data.describe()}; class {name} removed from the transfer set "
        f"({len(x_transfer):,} images left; {len(x_val):,} held-out training "
        f"images of every class choose the bias raise); {len(seeds)} seed(s). "
        f"Student 784-{settings['student_units']}x2-10, {settings['epochs']} epochs, "
        f"T = {settings['temperature']:g}, alpha = {settings['alpha']} (the labels "
        "of the other classes)."
    )
    before, after = measured["before"], measured["after"]
    headline = (
        f"before: {np.mean([s[0] for s in before]):.0f} test errors, "
        f"{np.mean([s[1] for s in before]):.0f} of them on the {n_class:,} images "
        f"of class {name} ({100 * np.mean([s[2] for s in before]):.1f}% correct); "
        f"after a raise of {np.mean(measured['shift']):.1f}: "
        f"{np.mean([s[0] for s in after]):.0f} errors, "
        f"{100 * np.mean([s[2] for s in after]):.1f}% of the class correct"
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)
