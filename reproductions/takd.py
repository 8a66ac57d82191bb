"""`takd`: distillation through a teacher assistant (Mirzadeh et al., 2020).

The CNN teacher (`models.TEACHERS["cnn"]`, 870k parameters, about 7% test
error) is far larger and stronger than the student, an MLP with one hidden
layer of 32 units. The student is trained from the same initial weights and
for the same epochs: on the labels alone, distilled directly from the
teacher, and distilled from an assistant of middling size (an MLP with one
hidden layer of 256 units) that was itself distilled from the teacher
(`AssistantChain`).
"""

import time

import keras
import numpy as np

from keras_distill import AssistantChain
from keras_distill import Distiller
from reproductions import models
from reproductions import report

NAME = "takd"
TITLE = "A teacher assistant across a large size gap (Mirzadeh et al., 2020)"
PAPER = (
    "CIFAR-10, plain CNNs (teacher 10 layers, assistant 4, student 2): "
    "student alone 70.16%, distilled directly 72.57%, through the "
    "assistant 73.51%."
)
SETTINGS = {
    "full": {
        "assistant_units": 256,
        "student_units": 32,
        "epochs": 10,
        "batch_size": 128,
        "temperature": 4.0,
        "alpha": 0.5,
    },
    "quick": {
        "assistant_units": 16,
        "student_units": 4,
        "epochs": 1,
        "batch_size": 128,
        "temperature": 4.0,
        "alpha": 0.5,
    },
}


def run(data, settings, seeds, output):
    start = time.perf_counter()
    fit = dict(epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=0)
    kd_settings = dict(
        loss=models.loss(), metrics=models.metrics(), alpha=settings["alpha"], temperature=settings["temperature"]
    )
    keys = ("teacher", "assistant", "alone", "direct", "assistant path")
    accuracy = {key: [] for key in keys}
    for seed in seeds:
        teacher = models.teacher(data, seed, kind="cnn")
        student = models.same_start(lambda: models.mlp([settings["student_units"]], "student"), seed)
        alone = models.compile_classifier(student())
        alone.fit(data.x_train, data.y_train, **fit)
        direct = student()
        distiller = Distiller(student=direct, teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3), **kd_settings)
        distiller.fit(data.x_train, data.y_train, **fit)
        keras.utils.set_random_seed(seed)
        assistant = models.mlp([settings["assistant_units"]], "assistant")
        chained = student()
        chain = AssistantChain([teacher, assistant, chained])
        chain.compile(optimizer=lambda: keras.optimizers.Adam(1e-3), **kd_settings)
        chain.fit(data.x_train, data.y_train, **fit)
        for key, model in zip(keys, (teacher, assistant, alone, direct, chained)):
            accuracy[key].append(models.accuracy(model, data.x_test, data.y_test))
        print(f"takd seed {seed}: " + ", ".join(f"{k} {100 * v[-1]:.2f}%" for k, v in accuracy.items()), flush=True)

    labels = {
        "teacher": "CNN teacher",
        "assistant": f"assistant 784-{settings['assistant_units']}-10, distilled from the teacher",
        "alone": "student, labels only",
        "direct": "student distilled directly from the teacher",
        "assistant path": "student distilled from the assistant",
    }
    params = {"teacher": teacher, "assistant": assistant, "alone": alone, "direct": direct, "assistant path": chained}
    table = report.markdown_table(
        ["model", "parameters", "test accuracy"],
        [(labels[k], f"{params[k].count_params():,}", report.percent(accuracy[k])) for k in keys],
    )

    fig, axes = report.figure()
    values = [100 * np.asarray(accuracy[k]) for k in keys]
    axes.bar(
        range(len(keys)),
        [v.mean() for v in values],
        yerr=[report.spread(v) for v in values],
        capsize=4,
        color=["gray", "gray", "C0", "C1", "C2"],
    )
    axes.set_xticks(
        range(len(keys)), ["teacher", "assistant", "student\nalone", "student\ndirect", "student via\nassistant"]
    )
    axes.set_ylim(max(0.0, min(v.min() for v in values) - 3), None)
    figure = report.save_figure(fig, axes, output, NAME, legend=False, title=f"Mean ± std of {len(seeds)} seed(s)")

    setup = (
        f"{data.describe()}; {len(seeds)} seed(s). Student 784-{settings['student_units']}-10 "
        f"({alone.count_params():,} parameters, "
        f"{teacher.count_params() // alone.count_params()}x smaller than the teacher), "
        f"{settings['epochs']} epochs per stage, Adam 1e-3, T = {settings['temperature']:g}, "
        f"alpha = {settings['alpha']}."
    )
    mean = {k: 100 * np.mean(v) for k, v in accuracy.items()}
    headline = (
        f"student alone {mean['alone']:.2f}%, distilled directly {mean['direct']:.2f}%, "
        f"through the assistant {mean['assistant path']:.2f}%"
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)
