"""`dml`: Deep Mutual Learning of two different peers (Zhang et al., 2018).

Two peers of different kinds, an MLP and a CNN clearly ahead of it (the
teachers' CNN architecture), are trained from the same initial weights for
the same epochs: each alone on the labels, and both together with
`MutualLearner` (each learns from the labels and from the other's
predictions, KL at T = 1, as in the paper, where a small ResNet gained
most from a large WRN peer).
"""

import time

import keras
import numpy as np

from keras_distill import MutualLearner
from reproductions import models
from reproductions import report

NAME = "dml"
TITLE = "Deep Mutual Learning of two different peers (Zhang et al., 2018)"
PAPER = "CIFAR-100: ResNet-32 68.99% trained alone, 70.73% trained mutually with a WRN-28-10."
SETTINGS = {
    "full": {"train_size": 10000, "mlp_units": (512, 512), "cnn": "cnn", "epochs": 12, "batch_size": 128},
    "quick": {"train_size": 1000, "mlp_units": (32,), "cnn": "cnn", "epochs": 1, "batch_size": 128},
}


def run(data, settings, seeds, output):
    start = time.perf_counter()
    size = settings["train_size"]
    x_train, y_train, x_test = data.x_train[:size], data.y_train[:size], data.x_test
    cnn = models.TEACHERS["cnn"]["quick" if data.quick else "full"]
    fit = dict(epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=0)
    builders = {
        "MLP": lambda: models.mlp(settings["mlp_units"], "mlp"),
        "CNN": lambda: models.cnn(
            cnn["blocks"], "cnn", dense=cnn["dense"], block_dropout=cnn["block_dropout"], dropout=cnn["dropout"]
        ),
    }
    accuracy = {(peer, how): [] for peer in builders for how in ("alone", "mutual")}
    for seed in seeds:
        fresh = {peer: models.same_start(build, seed) for peer, build in builders.items()}
        for peer in builders:
            keras.utils.set_random_seed(seed)
            alone = models.compile_classifier(fresh[peer]())
            alone.fit(x_train, y_train, **fit)
            accuracy[(peer, "alone")].append(models.accuracy(alone, x_test, data.y_test))
        peers = [fresh[peer]() for peer in builders]
        keras.utils.set_random_seed(seed)
        learner = MutualLearner(peers, temperature=1.0)
        learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss=models.loss(), metrics=models.metrics())
        learner.fit(x_train, y_train, **fit)
        for peer, model in zip(builders, peers):
            accuracy[(peer, "mutual")].append(models.accuracy(model, x_test, data.y_test))
        print(
            f"dml seed {seed}: " + ", ".join(f"{p} {h} {100 * v[-1]:.2f}%" for (p, h), v in accuracy.items()),
            flush=True,
        )

    rows = []
    for peer, model in zip(builders, peers):
        gain = 100 * (np.mean(accuracy[(peer, "mutual")]) - np.mean(accuracy[(peer, "alone")]))
        rows.append(
            (
                peer,
                f"{model.count_params():,}",
                report.percent(accuracy[(peer, "alone")]),
                report.percent(accuracy[(peer, "mutual")]),
                f"{gain:+.2f}",
            )
        )
    table = report.markdown_table(["peer", "parameters", "trained alone", "trained mutually", "gain (points)"], rows)

    fig, axes = report.figure()
    positions = np.arange(len(builders))
    for offset, how in ((-0.2, "alone"), (0.2, "mutual")):
        values = [100 * np.asarray(accuracy[(peer, how)]) for peer in builders]
        axes.bar(
            positions + offset,
            [v.mean() for v in values],
            width=0.4,
            yerr=[report.spread(v) for v in values],
            capsize=4,
            label=f"trained {how}",
        )
    axes.set_xticks(positions, list(builders))
    low = min(100 * min(v) for v in accuracy.values())
    axes.set_ylim(max(0.0, low - 3), None)
    figure = report.save_figure(fig, axes, output, NAME, title=f"Mean ± std of {len(seeds)} seed(s)")

    setup = (
        f"Fashion-MNIST, the first {len(x_train):,} training images (a regime where "
        f"the peers overfit), {len(x_test):,} test images; {len(seeds)} seed(s). "
        f"MLP 784-{'-'.join(str(u) for u in settings['mlp_units'])}-10 and the teachers' CNN "
        f"({' | '.join('-'.join(str(w) for w in b) for b in cnn['blocks'])} 3x3 convolutions, "
        f"Dense({cnn['dense']}), dropout); "
        f"{settings['epochs']} epochs, Adam 1e-3, batch {settings['batch_size']}, "
        "same initial weights alone and mutual."
    )
    headline = "; ".join(
        f"{peer} {100 * np.mean(accuracy[(peer, 'alone')]):.2f}% alone -> "
        f"{100 * np.mean(accuracy[(peer, 'mutual')]):.2f}% mutual"
        for peer in builders
    )
    return report.Result(NAME, TITLE, PAPER, setup, table, headline, figure, time.perf_counter() - start)
