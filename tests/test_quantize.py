import keras
import numpy as np
import pytest

import keras_distill as kd
from keras_distill.quantize import FakeQuantDense
from keras_distill.quantize import quantizable_layers
from keras_distill.quantize import with_adapters
from tests.conftest import make_mlp


def _trained(units, name, digits, epochs):
    (x, y), _ = digits
    model = make_mlp(units, name=name)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained(digits):
    keras.utils.set_random_seed(0)
    return _trained(64, "teacher", digits, 20), _trained(16, "student", digits, 10)


@pytest.mark.parametrize("method", ["ptq", "lora", "qat"])
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_a_quantized_copy_is_returned_and_the_student_is_left_as_it_was(trained, digits, mode, method):
    teacher, student = trained
    (x, y), (x_test, _) = digits
    weights = [np.array(w) for w in student.get_weights()]
    teacher_weights = [np.array(w) for w in teacher.get_weights()]
    quantized = kd.quantize_student(student, teacher, x, y, mode=mode, method=method, epochs=1)
    assert quantized is not student
    assert all(np.array_equal(a, b) for a, b in zip(weights, student.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(teacher_weights, teacher.get_weights()))
    assert all(layer.quantization_mode is None for layer in student.layers)
    dense = [layer for layer in quantized.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.quantization_mode for layer in dense] == [mode] * 2
    assert not any(layer.lora_enabled for layer in dense)  # merged
    float_logits = student.predict(x_test, verbose=0)
    logits = quantized.predict(x_test, verbose=0)
    assert logits.shape == float_logits.shape and np.all(np.isfinite(logits))
    # Close to the float student: the same function, rounded.
    agreement = np.mean(np.argmax(logits, -1) == np.argmax(float_logits, -1))
    assert agreement > 0.8, agreement


def test_recovery_trains_the_adapters_and_biases_not_the_quantized_kernels(trained):
    _, student = trained
    model = with_adapters(student, "int8", rank=4)
    trainable = {v.path for v in model.trainable_variables}
    frozen = {v.path for v in model.non_trainable_variables}
    assert any("lora_kernel_a" in path for path in trainable)
    assert any("bias" in path for path in trainable)
    assert not any(path.endswith("/kernel") or "kernel_scale" in path for path in trainable), trainable
    assert any(path.endswith("/kernel") for path in frozen)
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in model.trainable_variables)


def test_recovery_by_distillation_moves_the_quantized_student_toward_the_teacher(trained, digits):
    teacher, student = trained
    (x, y), (x_test, _) = digits
    post_training = kd.quantize_student(student, mode="int4", method="ptq")
    recovered = kd.quantize_student(
        student, teacher, x, y, mode="int4", method="lora", epochs=3, alpha=0.0, temperature=1.0
    )
    target = keras.ops.convert_to_numpy(keras.ops.softmax(teacher.predict(x_test, verbose=0)))

    def distance(model):
        probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x_test, verbose=0)))
        return float(np.mean(np.abs(probabilities - target)))

    assert distance(recovered) < distance(post_training)


@pytest.mark.parametrize("method", ["lora", "qat"])
def test_recovery_follows_the_teacher_not_the_labels(trained, digits, method):
    # Labels that the teacher contradicts: a recovery from the labels alone
    # (alpha=1, the teacher ignored) would move away from the teacher.
    teacher, student = trained
    (x, y), (x_test, _) = digits
    shifted = (y + 1) % 10
    post_training = kd.quantize_student(student, mode="int4", method="ptq")
    recovered = kd.quantize_student(
        student, teacher, x, shifted, mode="int4", method=method, epochs=3, alpha=0.0, temperature=1.0
    )
    target = teacher.predict(x_test, verbose=0).argmax(-1)

    def agreement(model):
        return float(np.mean(model.predict(x_test, verbose=0).argmax(-1) == target))

    labels_only = kd.quantize_student(
        student, teacher, x, shifted, mode="int4", method=method, epochs=3, alpha=1.0, temperature=1.0
    )
    scores = {name: agreement(m) for name, m in [("ptq", post_training), ("kd", recovered), ("labels", labels_only)]}
    # Away from the labels the teacher contradicts, and at least where the
    # rounding left it (less a little: QAT's few steps jitter by ~1%).
    assert scores["kd"] > scores["labels"] + 0.02, scores
    assert scores["kd"] >= scores["ptq"] - 0.02, scores
    assert scores["kd"] > 0.5, scores


def test_fake_quantization_computes_what_the_int8_layer_computes(digits):
    (x, _), _ = digits
    layer = keras.layers.Dense(12)
    layer.build((None, 64))
    fake = FakeQuantDense(12, quantized_range=127.0)
    fake.build((None, 64))
    fake.set_weights(layer.get_weights())
    quantized = keras.layers.Dense(12)
    quantized.build((None, 64))
    quantized.set_weights(layer.get_weights())
    quantized.quantize("int8")
    expected = keras.ops.convert_to_numpy(quantized(x[:32]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fake(x[:32])), expected, atol=1e-4)
    # ...and differs from the float layer, which it would not if the rounding were a no-op.
    assert np.max(np.abs(keras.ops.convert_to_numpy(layer(x[:32])) - expected)) > 1e-4


def test_fake_quantization_passes_the_gradient_straight_through(digits):
    (x, _), _ = digits
    fake = FakeQuantDense(3, quantized_range=7.0, use_bias=False)
    fake.build((None, 64))
    from keras_distill.quantize import _fake_quantize

    kernel = keras.ops.convert_to_tensor(fake.get_weights()[0])
    if keras.backend.backend() == "jax":
        import jax

        gradient = jax.grad(lambda k: keras.ops.sum(_fake_quantize(k, axis=0, limit=7.0) * 2.0))(kernel)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(kernel)
            total = tf.reduce_sum(_fake_quantize(kernel, axis=0, limit=7.0) * 2.0)
        gradient = tape.gradient(total, kernel)
    else:
        import torch

        kernel = kernel.clone().requires_grad_(True)
        torch.sum(_fake_quantize(kernel, axis=0, limit=7.0) * 2.0).backward()
        gradient = kernel.grad
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gradient), 2.0)


def test_a_student_keras_cannot_quantize_is_refused_with_its_layers():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(10, 3, name="only_conv")(inputs)
    student = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ValueError, match=r"only_conv.*Dense, EinsumDense or Embedding"):
        kd.quantize_student(student, method="ptq")


def test_layers_that_stay_float_are_named():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="float_conv")(inputs)
    x = keras.layers.Flatten()(x)
    student = keras.Model(inputs, keras.layers.Dense(10, name="head")(x))
    assert quantizable_layers(student) == (["head"], ["float_conv"])
    with pytest.warns(UserWarning, match=r"\['float_conv'\] keep float32.*\['head'\] are quantized to int8"):
        quantized = kd.quantize_student(student, method="ptq")
    assert quantized.get_layer("head").quantization_mode == "int8"
    assert quantized.get_layer("float_conv").quantization_mode is None


def test_recovery_without_a_teacher_or_data_is_refused():
    student = make_mlp(8, name="student")
    with pytest.raises(ValueError, match="pass `teacher` and the training data"):
        kd.quantize_student(student, mode="int8", method="lora")
    with pytest.raises(ValueError, match=r"`mode` must be one of \('int8', 'int4'\)"):
        kd.quantize_student(student, mode="int2", method="ptq")


def test_quantized_students_train_under_distillation_with_their_kernels_and_the_teacher_unchanged(trained, digits):
    teacher, student = trained
    (x, y), _ = digits
    model = with_adapters(student, "int8", rank=4)
    frozen = {v.path: np.array(v) for v in model.variables if "lora" not in v.path and "bias" not in v.path}
    adapters = {v.path: np.array(v) for v in model.variables if "lora_kernel_b" in v.path}
    teacher_weights = [np.array(w) for w in teacher.get_weights()]
    distiller = kd.Distiller(student=model, teacher=teacher)
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    distiller.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert any(path.endswith("/kernel") for path in frozen)
    for v in model.variables:
        if v.path in frozen:
            np.testing.assert_array_equal(np.array(v), frozen[v.path], err_msg=v.path)
        if v.path in adapters:
            assert not np.array_equal(np.array(v), adapters[v.path]), v.path  # the adapters trained
    assert all(np.array_equal(a, b) for a, b in zip(teacher_weights, teacher.get_weights()))


def test_the_learning_rate_is_the_recoverys(trained, digits):
    # Adam moves each weight by about the learning rate per step: at 1e-9 the
    # recovered student is the rounded one; at the default it has moved.
    teacher, student = trained
    (x, y), (x_test, _) = digits
    rounded = kd.quantize_student(student, mode="int8", method="ptq").predict(x_test, verbose=0)
    still = kd.quantize_student(student, teacher, x, y, mode="int8", method="lora", epochs=1, learning_rate=1e-9)
    moved = kd.quantize_student(student, teacher, x, y, mode="int8", method="lora", epochs=1)
    np.testing.assert_allclose(still.predict(x_test, verbose=0), rounded, atol=1e-4)
    assert np.abs(moved.predict(x_test, verbose=0) - rounded).max() > 1e-2
