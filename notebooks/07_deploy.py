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
# # From a distilled student to a phone: quantize, recover, export
#
# A teacher (784-1200-1200-10) is distilled into a 784-128-10 student on Fashion-MNIST. The student is quantized to int4 with Keras (`model.quantize`), which costs accuracy; `kd.quantize_student(..., method='lora')` wins it back with LoRA adapters trained by distillation from the float teacher while the int4 kernels stay frozen. Then `keras_distill.export.export` writes a LiteRT `.tflite` file and an ONNX file, each checked against the Keras model in its own runtime, and we run the `.tflite` file in the LiteRT interpreter. Needs `pip install keras-distill[export]`.
#
# **Run time**: 2.5 min on 2 CPU cores with the TensorFlow backend (measured here, full run as a script: teacher, student, int4 recovery, LiteRT and ONNX exports, 150 s, 2026-12-05). A CPU runtime is enough (on a GPU runtime, not measured, these small models may not run faster); the exports run on TensorFlow.

# %%
# Setup: keras_distill if it is installed; otherwise (Colab) it is installed
# from KERAS_DISTILL_SOURCE (a wheel you uploaded, or a git URL) or the
# package index. The backend is chosen before Keras is imported.
import importlib.util
import os
import subprocess
import sys

os.environ.setdefault(
    "KERAS_BACKEND", "tensorflow"
)  # exports to LiteRT and ONNX run natively on it; or "jax", "tensorflow", "torch"
if importlib.util.find_spec("keras_distill") is None:
    source = os.environ.get("KERAS_DISTILL_SOURCE", "keras-distill")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", source + "[export]"], capture_output=True, text=True
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
print(x_train.shape, x_val.shape, x_test.shape)


# %% [markdown]
# ## Teacher and distilled student


# %%
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
)

# The student: the same MLP family, 10x fewer parameters, distilled from the teacher.
keras.utils.set_random_seed(1)
student = mlp([128], "student")
distiller = kd.Distiller(student=student, teacher=teacher)
distiller.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    alpha=0.5,
    temperature=4.0,
)
distill_history = distiller.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=(x_val, y_val), verbose=2
)

# %% [markdown]
# ## Quantize, then recover by distillation

# %%
# Keras quantizes the Dense layers (model.quantize); quantize_student returns a
# new model and leaves `student` as it was.
RECOVER_EPOCHS = 1 if QUICK else 2
post_training = kd.quantize_student(student, mode="int4", method="ptq")
recovered = kd.quantize_student(
    student,
    teacher,
    x_train,
    y_train,
    mode="int4",
    method="lora",
    epochs=RECOVER_EPOCHS,
    validation_data=(x_val, y_val),
    verbose=2,
)


def accuracy(model):
    return float(np.mean(np.argmax(model.predict(x_test, batch_size=512, verbose=0), -1) == y_test))


results = {
    "float32": accuracy(student),
    "int4 post-training": accuracy(post_training),
    "int4 recovered by distillation": accuracy(recovered),
}
for name, value in results.items():
    print(f"{name:<32}{value:.2%}")

# %% [markdown]
# ## Export with proof
# The TFLite converter cannot read layers Keras quantized, so the `.tflite` file is the float student with the converter's own int8 weights (`litert_int8=True`); the int4 student goes to ONNX.

# %%
# export() writes the artifact, runs it in its own runtime, compares it with the
# Keras model (an ExportMismatchError otherwise) and measures size and latency.
from keras_distill.export import export
from keras_distill.export import export_saved_model
from keras_distill.export import load_artifact

litert = export(
    student, os.path.join(OUTPUT, "student_int8"), format="litert", litert_int8=True, sample_inputs=x_test[:64]
)
onnx = export(recovered, os.path.join(OUTPUT, "student_int4"), format="onnx", sample_inputs=x_test[:64], tolerance=1e-2)
for report in (litert, onnx):
    print(
        f"{report.format:<8}{report.path:<60}{report.size_bytes / 1e3:>8.1f} kB"
        f"{report.latency_ms:>8.3f} ms  max diff {report.max_difference:.1e}"
    )
student.save(os.path.join(OUTPUT, "student.keras"))
export_saved_model(student, os.path.join(OUTPUT, "student_savedmodel"))

# %% [markdown]
# ## The artifacts in their runtimes

# %%
# The .tflite file in the LiteRT interpreter a phone runs, on the whole test set.
from ai_edge_litert.interpreter import Interpreter

interpreter = Interpreter(model_path=litert.path)
interpreter.allocate_tensors()
inputs, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
predictions = []
for image in x_test:
    interpreter.set_tensor(inputs["index"], image[None])
    interpreter.invoke()
    predictions.append(np.argmax(interpreter.get_tensor(outputs["index"])[0]))
results["int8 .tflite (LiteRT interpreter)"] = float(np.mean(np.array(predictions) == y_test))
results["int4 .onnx (onnxruntime)"] = float(np.mean(np.argmax(load_artifact(onnx.path, "onnx")(x_test), -1) == y_test))
for name, value in results.items():
    print(f"{name:<36}{value:.2%}")

# %%
import matplotlib

if "google.colab" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axis = plt.subplots(figsize=(8, 3.5))
axis.barh(list(results), [100 * value for value in results.values()])
axis.set(xlabel="test accuracy (%)", xlim=(min(results.values()) * 100 - 5, 100))
fig.tight_layout()
fig.savefig(os.path.join(OUTPUT, "accuracy_by_format.png"), dpi=80)
plt.show()

# %% [markdown]
# What to expect, from the run measured here (one seed): the float32 student reaches 88.11%, int4 post-training quantization costs it 1.53 points (86.58%) and recovery by distillation gives back 0.16 (86.74%); the int8 `.tflite` file in the LiteRT interpreter reaches 87.99% and the int4 ONNX file in onnxruntime 86.74%, the recovered student's own accuracy.
