import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # or "tensorflow", "torch": before importing Keras
import time

import keras
import numpy as np

import keras_distill as kd

start = time.perf_counter()
keras.utils.set_random_seed(0)
(x, y), (x_test, y_test) = kd.datasets.load_fashion_mnist(normalize=True)
x, x_test = x.reshape(-1, 784), x_test.reshape(-1, 784)
y_few = np.where(np.arange(len(y)) < 5000, y, -1)  # the student's 5,000 labels; -1: unlabeled
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)


def mlp(*units):  # logits out: no softmax at the end
    hidden = [keras.layers.Dense(n, activation="relu") for n in units]
    return keras.Sequential([keras.Input((784,)), *hidden, keras.layers.Dense(10)])


teacher, scratch, student = mlp(1200, 1200), mlp(32), mlp(32)
scratch.set_weights(student.get_weights())  # the same start for both students
teacher.compile("adam", loss)
teacher.fit(x, y, epochs=5, batch_size=128, verbose=0)
scratch.compile("adam", loss)
scratch.fit(x, y_few, epochs=10, batch_size=128, verbose=0)  # the 5,000 labels alone
distiller = kd.Distiller(student=student, teacher=teacher)
distiller.compile("adam", loss, alpha=0.5, temperature=2.0)
distiller.fit(x, y_few, epochs=10, batch_size=128, verbose=0)  # + the teacher on every image
models = {"teacher, every label": teacher, "from scratch": scratch, "distilled": student}
for name, model in models.items():
    accuracy = np.mean(model.predict(x_test, verbose=0).argmax(-1) == y_test)
    print(f"{name:>20}: {accuracy:.2%} test accuracy")
print(f"{time.perf_counter() - start:.0f} s")
student.save("student.keras")
