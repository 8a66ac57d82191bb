"""Writes the notebooks from the cell sources below, outputs stripped.

Run `python notebooks/make_notebooks.py` after editing; the tests execute
the .ipynb files it writes.
"""

import os

import nbformat
from nbformat.v4 import new_code_cell
from nbformat.v4 import new_markdown_cell
from nbformat.v4 import new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = '''\
# Colab: install keras-distill (set KERAS_DISTILL_SOURCE to a wheel or git URL
# to install another build). Pick the backend before Keras is imported.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    source = os.environ.get("KERAS_DISTILL_SOURCE", "keras-distill")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
os.environ.setdefault("KERAS_BACKEND", "jax")  # or "tensorflow", "torch"

# KERAS_DISTILL_QUICK=1 runs on a small subset (the test suite sets it).
QUICK = os.environ.get("KERAS_DISTILL_QUICK") == "1"
OUTPUT = os.environ.get("KERAS_DISTILL_OUTPUT", "distill-notebook-output")
os.makedirs(OUTPUT, exist_ok=True)

import keras
import numpy as np

import keras_distill as kd

print("Keras", keras.__version__, "backend:", keras.backend.backend())'''

DATA = '''\
def load_fashion_mnist():
    """tensorflow-datasets when it can be reached, the local loader otherwise."""
    if os.environ.get("KERAS_DISTILL_OFFLINE") != "1":
        try:
            import tensorflow_datasets as tfds

            (x_train, y_train), (x_test, y_test) = tfds.as_numpy(
                tfds.load("fashion_mnist", split=["train", "test"], batch_size=-1, as_supervised=True)
            )
            print("Fashion-MNIST from tensorflow-datasets")
            return (x_train[..., 0] / 255.0, y_train), (x_test[..., 0] / 255.0, y_test)
        except Exception as error:  # offline, or tfds missing
            print(f"tensorflow-datasets unavailable ({type(error).__name__}); using the local loader")
    return kd.datasets.load_fashion_mnist(normalize=True)


(x_train, y_train), (x_test, y_test) = load_fashion_mnist()
x_train = x_train.reshape(len(x_train), -1).astype("float32")
x_test = x_test.reshape(len(x_test), -1).astype("float32")
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], y_test[:1000]
x_val, y_val = x_train[-len(x_train) // 12 :], y_train[-len(x_train) // 12 :]
x_train, y_train = x_train[: -len(x_train) // 12], y_train[: -len(x_train) // 12]
print(x_train.shape, x_val.shape, x_test.shape)'''

MODELS = '''\
def mlp(hidden, name, dropout=0.0):
    layers = [keras.Input((784,))]
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10))  # logits: no softmax
    return keras.Sequential(layers, name=name)


def compile_classifier(model):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


EPOCHS = 2 if QUICK else 20
TEACHER_UNITS = 256 if QUICK else 1200
keras.utils.set_random_seed(0)
teacher = mlp([TEACHER_UNITS, TEACHER_UNITS], "teacher", dropout=0.3)
compile_classifier(teacher)
teacher_history = teacher.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)'''

DISTILL = '''\
keras.utils.set_random_seed(1)
scratch = mlp([32], "student_scratch")
compile_classifier(scratch)
scratch_history = scratch.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)

keras.utils.set_random_seed(1)
student = mlp([32], "student")
distiller = kd.Distiller(student=student, teacher=teacher)
distiller.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    alpha=0.5,
    temperature=2.0,
)
distill_history = distiller.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)'''

PLOT = '''\
import matplotlib

if "google.colab" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for label, history in [("teacher", teacher_history), ("student from scratch", scratch_history), ("distilled student", distill_history)]:
    epochs = np.arange(1, len(history.history["loss"]) + 1)
    axes[0].plot(epochs, history.history["val_accuracy"], marker="o", label=label)
    axes[1].plot(epochs, history.history["loss"], marker="o", label=label)
axes[0].set(title="Validation accuracy", xlabel="epoch")
axes[1].set(title="Training loss (the distiller's is the combined loss)", xlabel="epoch")
for axis in axes:
    axis.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUTPUT, "learning_curves.png"), dpi=80)
plt.show()'''

RESULTS = '''\
def test_errors(model):
    logits = model.predict(x_test, batch_size=512, verbose=0)
    return int(np.sum(np.argmax(logits, axis=-1) != y_test))


print(f"{'model':<22}{'parameters':>12}{'test errors':>13}{'accuracy':>10}")
for name, model in [("teacher", teacher), ("student from scratch", scratch), ("distilled student", student)]:
    errors = test_errors(model)
    print(f"{name:<22}{model.count_params():>12,}{errors:>13,}{1 - errors / len(y_test):>10.2%}")'''

EXPORT = '''\
# The distilled student is the user's own architecture: save it as a .keras
# file and export a SavedModel for serving (TF Serving, TFLite converters).
from keras_distill.export import export_saved_model

student.save(os.path.join(OUTPUT, "student.keras"))
export_saved_model(student, os.path.join(OUTPUT, "student_savedmodel"))
reloaded = keras.saving.load_model(os.path.join(OUTPUT, "student.keras"))
np.testing.assert_allclose(reloaded.predict(x_test[:8], verbose=0), student.predict(x_test[:8], verbose=0), rtol=1e-5)
print(sorted(os.listdir(OUTPUT)))'''


def distiller_notebook():
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# Knowledge distillation with `keras_distill.Distiller`\n\n"
                "A large teacher (784-1200-1200-10 with dropout) teaches a small student "
                "(784-32-10) on Fashion-MNIST, following Hinton et al. (2015), "
                "[Distilling the Knowledge in a Neural Network](https://arxiv.org/abs/1503.02531). "
                "We compare the distilled student with the same student trained on labels alone, "
                "then export it. Runs on TensorFlow, JAX or PyTorch; open it in Colab or run it locally."
            ),
            new_code_cell(SETUP),
            new_markdown_cell("## Data\nFashion-MNIST: 60,000 training and 10,000 test images of clothes."),
            new_code_cell(DATA),
            new_markdown_cell("## The teacher\nA wide MLP with dropout, trained on the labels."),
            new_code_cell(MODELS),
            new_markdown_cell(
                "## The student, from scratch and distilled\n"
                "Same architecture, same initial weights, same epochs. The distiller's loss is "
                "`alpha * CE(y, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)`."
            ),
            new_code_cell(DISTILL),
            new_markdown_cell("## Learning curves"),
            new_code_cell(PLOT),
            new_markdown_cell("## Test results"),
            new_code_cell(RESULTS),
            new_markdown_cell("## Export the student"),
            new_code_cell(EXPORT),
        ],
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "colab": {"provenance": []},
        },
    )


def main():
    nbformat.write(distiller_notebook(), os.path.join(HERE, "01_distiller.ipynb"))


if __name__ == "__main__":
    main()
