# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Knowledge distillation with `keras_distill.Distiller`
#
# A large teacher (784-1200-1200-10 with dropout) teaches a small student (784-32-10) on Fashion-MNIST, following Hinton et al. (2015), [Distilling the Knowledge in a Neural Network](https://arxiv.org/abs/1503.02531). The teacher learned from every label; the student has only 5,000 of them, the common case where labels are dear and images cheap. We compare the student distilled on every image (the teacher's soft targets, plus its 5,000 labels) with the same student trained on its labels alone, then export it. Runs on TensorFlow, JAX or PyTorch; open it in Colab or run it locally.
#
# **Run time**: 4 min on 2 CPU cores with the JAX backend (measured here, full run as a script, 243 s, 2026-12-04); on a Colab GPU runtime about 2 min (estimated from its 40 epochs of small MLPs, not measured). A CPU runtime is enough. With the data on disk (Debian's `dataset-fashion-mnist`, or the Keras cache) nothing is downloaded.

# %%
# Setup: keras_distill if it is installed; otherwise (Colab) it is installed
# from KERAS_DISTILL_SOURCE (a wheel you uploaded, or a git URL) or the
# package index. The backend is chosen before Keras is imported.
import importlib.util
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")  # the fastest here for these MLPs; or "jax", "tensorflow", "torch"
if importlib.util.find_spec("keras_distill") is None:
    source = os.environ.get("KERAS_DISTILL_SOURCE", "keras-distill")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", source + ""], capture_output=True, text=True
    )
    if installed.returncode != 0:
        print(
            f"keras-distill could not be installed from {source!r}: it is not on the package index yet.\n"
            "To run this notebook in Colab: in a clone of the repository run `make wheel`, upload\n"
            "dist/keras_distill-0.1.0-py3-none-any.whl to this session (the Files pane), run\n"
            "%env KERAS_DISTILL_SOURCE=/content/keras_distill-0.1.0-py3-none-any.whl\n"
            "in a new cell, then run all cells again."
        )
        raise SystemExit("keras-distill is not installed: see the message above.")

# KERAS_DISTILL_QUICK=1 runs on a small subset (the test suite sets it).
QUICK = os.environ.get("KERAS_DISTILL_QUICK") == "1"
OUTPUT = os.environ.get("KERAS_DISTILL_OUTPUT", "distill-notebook-output")
os.makedirs(OUTPUT, exist_ok=True)

import keras
import numpy as np

import keras_distill as kd

print("Keras", keras.__version__, "backend:", keras.backend.backend())


# %% [markdown]
# ## Data
# Fashion-MNIST: 60,000 training and 10,000 test images of clothes.


# %%
def load_fashion_mnist():
    """The local files when they are found (no network needed), else
    tensorflow-datasets (Colab), else Keras' own download."""
    try:
        return kd.datasets.load_fashion_mnist(normalize=True, download=False)
    except FileNotFoundError:
        pass
    try:
        import tensorflow_datasets as tfds

        (x_train, y_train), (x_test, y_test) = tfds.as_numpy(
            tfds.load("fashion_mnist", split=["train", "test"], batch_size=-1, as_supervised=True)
        )
        print("Fashion-MNIST from tensorflow-datasets")
        return (x_train[..., 0] / 255.0, y_train), (x_test[..., 0] / 255.0, y_test)
    except Exception as error:  # tfds missing or unreachable
        print(f"tensorflow-datasets unavailable ({type(error).__name__}); downloading with Keras")
    return kd.datasets.load_fashion_mnist(normalize=True)


(x_train, y_train), (x_test, y_test) = load_fashion_mnist()
x_train = x_train.reshape(len(x_train), -1).astype("float32")
x_test = x_test.reshape(len(x_test), -1).astype("float32")
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], y_test[:1000]
x_val, y_val = x_train[-len(x_train) // 12 :], y_train[-len(x_train) // 12 :]
x_train, y_train = x_train[: -len(x_train) // 12], y_train[: -len(x_train) // 12]
# The student's labels: the first 5,000 (500 in the quick run); -1 marks the others unlabeled.
LABELS = 500 if QUICK else 5000
y_few = np.where(np.arange(len(y_train)) < LABELS, y_train, -1)
print(x_train.shape, x_val.shape, x_test.shape, f"the student has {LABELS:,} labels")


# %% [markdown]
# ## The teacher
# A wide MLP with dropout, trained on every label.


# %%
def mlp(hidden, name, dropout=0.0):
    layers = [keras.Input((784,))]
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10))  # logits: no softmax
    return keras.Sequential(layers, name=name)


# ignore_class=-1: the unlabeled examples add nothing to the hard-label loss (nor to the metrics).
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)


def compile_classifier(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"])


EPOCHS = 2 if QUICK else 20
TEACHER_UNITS = 256 if QUICK else 1200
keras.utils.set_random_seed(0)
teacher = mlp([TEACHER_UNITS, TEACHER_UNITS], "teacher", dropout=0.3)
compile_classifier(teacher)
teacher_history = teacher.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)

# %% [markdown]
# ## The student, from scratch and distilled
# Same architecture, same initial weights, same batches and epochs, the same 5,000 labels. From scratch, the unlabeled images teach it nothing; distilled, every image carries the teacher's soft targets. The distiller's loss is `alpha * CE(y, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)`, the first term on the labeled examples only.

# %%
STUDENT_EPOCHS = 2 if QUICK else 10
keras.utils.set_random_seed(1)
scratch = mlp([32], "student_scratch")
compile_classifier(scratch)
keras.utils.set_random_seed(2)
scratch_history = scratch.fit(
    x_train, y_few, epochs=STUDENT_EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)

keras.utils.set_random_seed(1)
student = mlp([32], "student")
distiller = kd.Distiller(student=student, teacher=teacher)
distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"], alpha=0.5, temperature=2.0)
keras.utils.set_random_seed(2)
distill_history = distiller.fit(
    x_train, y_few, epochs=STUDENT_EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)

# %% [markdown]
# ## Learning curves
# Validation accuracy by epoch: the distilled student (green) ends above the same student trained on its 5,000 labels alone (orange), which the unlabeled images cannot help, and below the teacher (blue), which saw every label. The right panel's losses are not comparable across models (the distiller's is its combined loss).

# %%
import matplotlib

if "google.colab" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for label, history in [
    ("teacher", teacher_history),
    ("student from scratch", scratch_history),
    ("distilled student", distill_history),
]:
    epochs = np.arange(1, len(history.history["loss"]) + 1)
    axes[0].plot(epochs, history.history["val_accuracy"], marker="o", label=label)
    axes[1].plot(epochs, history.history["loss"], marker="o", label=label)
axes[0].set(title="Validation accuracy", xlabel="epoch")
axes[1].set(title="Training loss (the distiller's is the combined loss)", xlabel="epoch")
for axis in axes:
    axis.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUTPUT, "learning_curves.png"), dpi=80)
plt.show()


# %% [markdown]
# ## Test results


# %%
def test_errors(model):
    logits = model.predict(x_test, batch_size=512, verbose=0)
    return int(np.sum(np.argmax(logits, axis=-1) != y_test))


print(f"{'model':<22}{'parameters':>12}{'test errors':>13}{'accuracy':>10}")
for name, model in [("teacher", teacher), ("student from scratch", scratch), ("distilled student", student)]:
    errors = test_errors(model)
    print(f"{name:<22}{model.count_params():>12,}{errors:>13,}{1 - errors / len(y_test):>10.2%}")
fewer = 1 - test_errors(student) / test_errors(scratch)
print(f"The distilled student makes {fewer:.0%} fewer test errors than the same student from scratch.")

# %% [markdown]
# ## Export the student

# %%
# The distilled student is the user's own architecture: save it as a .keras
# file and export a SavedModel for serving (TF Serving, TFLite converters).
from keras_distill.export import export_saved_model

student.save(os.path.join(OUTPUT, "student.keras"))
export_saved_model(student, os.path.join(OUTPUT, "student_savedmodel"))
reloaded = keras.saving.load_model(os.path.join(OUTPUT, "student.keras"))
np.testing.assert_allclose(reloaded.predict(x_test[:8], verbose=0), student.predict(x_test[:8], verbose=0), rtol=1e-5)
print(sorted(os.listdir(OUTPUT)))
