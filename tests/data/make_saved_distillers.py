"""Writes `.keras` files of every kind of trained, compiled distiller, with
the predictions each made before it was saved.

The files in `tests/data/saved_distillers/` were written by this script on
main at ffcce13, the last commit before the training core was rebuilt
(issue 32), once per backend:

    for backend in tensorflow jax torch; do
        KERAS_BACKEND=$backend python tests/data/make_saved_distillers.py
    done

`tests/distillers/test_saved_files.py` loads them all on every backend and
checks that they predict what they predicted then and train on. Do not
regenerate them: they are the files users saved with the earlier library.
"""

import os
import sys

import keras
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import keras_distill as kd  # noqa: E402
from tests.conftest import causal_lm  # noqa: E402
from tests.conftest import make_mlp  # noqa: E402
from tests.conftest import token_batch  # noqa: E402

DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "saved_distillers")
BACKEND = keras.backend.backend()


def digits():
    (x, y), _ = kd.datasets.load_digits(normalize=True)
    return x.reshape(len(x), -1)[:256].astype("float32"), y[:256]


def dict_model(name, units):
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(inputs)
    outputs = {
        "digit": keras.layers.Dense(10, name=f"{name}_digit")(hidden),
        "parity": keras.layers.Dense(2, name=f"{name}_parity")(hidden),
    }
    return keras.Model(inputs, outputs, name=name)


def cases():
    """(name, model, x, fit arguments) of every saved distiller."""
    x, y = digits()
    optimizer = keras.optimizers.Adam(1e-3)
    multi = kd.Distiller(
        student=make_mlp(8, name="student"),
        teacher=[make_mlp(32, name="teacher_a"), make_mlp(16, name="teacher_b")],
        teacher_weights=[2, 1],
    )
    multi.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        alpha=0.3,
        temperature=3.0,
        distillation_loss=["kl", "logit_matching"],
        distillation_loss_weights=[1.0, 0.1],
    )
    yield "distiller_two_teachers", multi, x, (x, y)

    subset = kd.Distiller(
        student=make_mlp(8, name="student", classes=3), teacher=make_mlp(32, name="teacher"), teacher_classes=[3, 5, 7]
    )
    subset.compile(optimizer="adam", loss=None, alpha=0.0, distillation_loss="reverse_kl", standardize_logits=True)
    yield "distiller_class_subset", subset, x, (x, None)

    structured = kd.Distiller(student=dict_model("student", 8), teacher=dict_model("teacher", 32))
    structured.compile(
        optimizer="adam",
        loss={"digit": "sparse_categorical_crossentropy"},
        metrics={"digit": ["accuracy"]},
        distillation_loss={"digit": "kl", "parity": keras.losses.MeanSquaredError()},
        distillation_loss_weights={"parity": 0.5},
        alpha=0.4,
        temperature=2.5,
    )
    yield "distiller_dict_outputs", structured, x, (x, {"digit": y})

    feature = kd.FeatureDistiller(
        student=make_mlp(8, name="student"),
        teacher=make_mlp(32, name="teacher"),
        pairs=[("teacher_hidden", "student_hidden")],
        projections="auto",
    )
    feature.compile(optimizer="adam", loss="sparse_categorical_crossentropy", feature_weight=0.5, alpha=0.5)
    yield "feature_distiller", feature, x, (x, y)

    hint = kd.HintDistiller(
        student=make_mlp(8, name="student"),
        teacher=make_mlp(32, name="teacher"),
        hint_layer="teacher_hidden",
        guided_layer="student_hidden",
    )
    hint.compile(optimizer="adam", loss="sparse_categorical_crossentropy", alpha=0.1, temperature=4.0)
    hint.fit_hints(x, epochs=1, batch_size=64, verbose=0)
    yield "hint_distiller", hint, x, (x, y)

    learner = kd.MutualLearner(models=[make_mlp(8, name="peer_a"), make_mlp(12, name="peer_b")], temperature=2.0)
    learner.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    yield "mutual_learner", learner, x, (x, y)

    tokens, labels, mask = token_batch(16)
    tokens = {"token_ids": tokens["token_ids"], "padding_mask": tokens["padding_mask"]}
    lm = kd.CausalLMDistiller(
        student=causal_lm(1, 8, "student", dropout=0.0), teacher=causal_lm(2, 16, "teacher", dropout=0.0), chunk_size=4
    )
    lm.compile(optimizer="adam", loss="sparse_categorical_crossentropy", alpha=0.5, temperature=1.5)
    yield "causal_lm_distiller", lm, tokens, (tokens, labels, mask)


def main():
    os.makedirs(DIRECTORY, exist_ok=True)
    keras.utils.set_random_seed(0)
    predictions = {}
    for name, distiller, x, (fit_x, fit_y, *weights) in cases():
        sample_weight = weights[0] if weights else None
        distiller.fit(fit_x, fit_y, sample_weight=sample_weight, epochs=1, batch_size=64, verbose=0)
        path = os.path.join(DIRECTORY, f"{name}_{BACKEND}.keras")
        distiller.save(path)
        sample = keras.tree.map_structure(lambda array: array[:8], x)
        output = distiller.predict(sample, verbose=0)
        if isinstance(output, list):
            output = np.stack(output)
        elif isinstance(output, dict):
            output = np.concatenate([output[key] for key in sorted(output)], axis=-1)
        predictions[f"{name}_{BACKEND}"] = np.asarray(output, "float32")
        print(f"wrote {path}")
    np.savez(os.path.join(DIRECTORY, f"predictions_{BACKEND}.npz"), **predictions)


if __name__ == "__main__":
    main()
