import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import make_pair

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _distiller(student_weights, teacher, **kwargs):
    student = make_mlp(8, name="student")
    student.set_weights(student_weights)
    distiller = kd.Distiller(student=student, teacher=teacher, **kwargs)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), loss=CE, metrics=["accuracy"], alpha=0.3, temperature=3.0)
    return distiller


def _fit(distiller, x, y, **kwargs):
    history = distiller.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, **kwargs)
    return history.history, distiller.student.get_weights()


def _assert_same_training(live, cached, rtol=1e-5, atol=1e-6):
    (live_history, live_weights), (cached_history, cached_weights) = live, cached
    assert set(live_history) == set(cached_history)
    for key in live_history:
        np.testing.assert_allclose(cached_history[key], live_history[key], rtol=rtol, atol=atol, err_msg=key)
    for live_weight, cached_weight in zip(live_weights, cached_weights):
        np.testing.assert_allclose(cached_weight, live_weight, rtol=rtol * 10, atol=atol * 10)


def test_cached_float32_trains_as_the_live_teacher(digits):
    (x, y), (x_val, y_val) = digits
    x, y = x[:320], y[:320]
    student, teacher = make_pair()
    initial = student.get_weights()
    teacher_before = [w.copy() for w in teacher.get_weights()]
    live = _fit(_distiller(initial, teacher), x, y, validation_data=(x_val, y_val))

    logits = kd.precompute_teacher_outputs(teacher, x, batch_size=64)
    assert logits.shape == (320, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(teacher(x)), rtol=1e-5, atol=1e-6)
    val_logits = kd.precompute_teacher_outputs(teacher, x_val)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(after, before)
    # Zeroing the teacher proves the cached run never consults it.
    teacher.set_weights([np.zeros_like(w) for w in teacher_before])
    cached = _fit(
        _distiller(initial, teacher),
        x,
        kd.with_teacher_outputs(y, logits),
        validation_data=(x_val, kd.with_teacher_outputs(y_val, val_logits)),
    )
    _assert_same_training(live, cached)
    assert "val_accuracy" in cached[0] and "val_distillation_loss" in cached[0]


def test_float16_storage_halves_memory_and_stays_close(digits):
    (x, y), _ = digits
    x, y = x[:320], y[:320]
    student, teacher = make_pair()
    initial = student.get_weights()
    logits32 = kd.precompute_teacher_outputs(teacher, x)
    logits16 = kd.precompute_teacher_outputs(teacher, x, dtype="float16")
    assert logits16.dtype == np.float16 and logits16.nbytes * 2 == logits32.nbytes
    full = _fit(_distiller(initial, teacher), x, kd.with_teacher_outputs(y, logits32))
    half = _fit(_distiller(initial, teacher), x, kd.with_teacher_outputs(y, logits16))
    # float16 keeps 11 significant bits: logits within 1e-3 relative.
    _assert_same_training(full, half, rtol=2e-3, atol=2e-4)


def test_shuffled_fit_keeps_logits_with_their_examples(digits):
    (x, y), _ = digits
    x, y = x[:256], y[:256]
    student, teacher = make_pair()
    initial = student.get_weights()
    logits = kd.precompute_teacher_outputs(teacher, x)
    results = []
    for target in (y, kd.with_teacher_outputs(y, logits)):
        keras.utils.set_random_seed(7)
        distiller = _distiller(initial, teacher)
        history = distiller.fit(x, target, batch_size=32, epochs=2, shuffle=True, verbose=0)
        results.append((history.history, distiller.student.get_weights()))
    _assert_same_training(*results)


def test_several_teachers_probabilities_and_class_subsets(digits):
    (x, y), _ = digits
    x = x[:200]
    labels = np.where(y[:200] % 2 == 0, 0, 1)
    first = make_mlp(32, name="first")
    second = make_mlp(16, name="second", softmax=True)
    student = make_mlp(8, name="student", classes=2)
    kwargs = dict(teacher=[first, second], teacher_weights=[2, 1], teacher_classes=[3, 8])
    distiller = kd.Distiller(student=student, **kwargs)
    distiller.compile(optimizer="sgd", loss=CE, alpha=0.2, temperature=4.0)
    logits = kd.precompute_teacher_outputs([first, second], x)
    assert logits.shape == (200, 2, 10)
    # The softmax teacher is stored as log-probabilities.
    np.testing.assert_allclose(logits[:, 1], np.log(keras.ops.convert_to_numpy(second(x))), rtol=1e-5, atol=1e-5)
    live = distiller.evaluate(x, labels, batch_size=50, return_dict=True, verbose=0)
    cached = distiller.evaluate(x, kd.with_teacher_outputs(labels, logits), batch_size=50, return_dict=True, verbose=0)
    for key in live:
        np.testing.assert_allclose(cached[key], live[key], rtol=1e-5, err_msg=key)


def test_unlabeled_transfer_set(digits):
    (x, _), _ = digits
    x = x[:128]
    student, teacher = make_pair()
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=None, alpha=0.0)
    logits = kd.precompute_teacher_outputs(teacher, x)
    live = distiller.evaluate(x, batch_size=32, return_dict=True, verbose=0)
    cached = distiller.evaluate(x, kd.with_teacher_outputs(None, logits), batch_size=32, return_dict=True, verbose=0)
    np.testing.assert_allclose(cached["distillation_loss"], live["distillation_loss"], rtol=1e-5)
    before = [w.copy() for w in student.get_weights()]
    distiller.fit(x, kd.with_teacher_outputs(None, logits), batch_size=32, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))


def test_dataset_cache_trains_as_the_live_teacher(digits):
    (x, y), _ = digits
    x, y = x[:320], y[:320]
    weights = np.linspace(0.5, 1.5, 320).astype("float32")
    student, teacher = make_pair()
    initial = student.get_weights()
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(48)  # a short last batch
    live = _fit(_distiller(initial, teacher), dataset, None)
    cached_dataset = kd.precompute_teacher_outputs(teacher, dataset, dtype="float32")
    first = next(iter(cached_dataset))
    assert set(first[1]) == {"labels", "teacher_logits"} and len(first) == 3
    cached = _fit(_distiller(initial, teacher), cached_dataset, None)
    _assert_same_training(live, cached)
    # Shuffling after caching keeps each example's logits.
    shuffled = cached_dataset.unbatch().shuffle(320, seed=1).batch(32)
    for x_batch, target, _ in shuffled.take(2):
        np.testing.assert_allclose(
            target["teacher_logits"], keras.ops.convert_to_numpy(teacher(x_batch.numpy())), rtol=1e-5, atol=1e-5
        )


def test_dataset_with_inputs_only(digits):
    (x, _), _ = digits
    student, teacher = make_pair()
    cached = kd.precompute_teacher_outputs(
        teacher, tf.data.Dataset.from_tensor_slices(x[:64]).batch(16), dtype="float16"
    )
    element = next(iter(cached))
    assert set(element[1]) == {"teacher_logits"} and element[1]["teacher_logits"].dtype == tf.float16
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=None, alpha=0.0)
    distiller.fit(cached, epochs=1, shuffle=False, verbose=0)


@pytest.mark.parametrize(
    "pipeline",
    [
        lambda ds: ds.shuffle(64),
        lambda ds: ds.map(lambda x, y: (x + tf.random.uniform(tf.shape(x)), y)),
        lambda ds: ds.map(lambda x, y: (tf.image.random_flip_left_right(tf.reshape(x, (8, 8, 1))), y)),
    ],
    ids=["shuffle", "random_uniform", "random_flip"],
)
def test_random_pipelines_are_refused(digits, pipeline):
    (x, y), _ = digits
    dataset = pipeline(tf.data.Dataset.from_tensor_slices((x[:64], y[:64]))).batch(16)
    with pytest.raises(ValueError, match="shuffles or draws random numbers.*unbatch"):
        kd.precompute_teacher_outputs(make_mlp(name="teacher"), dataset)


def test_errors(digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    student, teacher = make_pair()
    with pytest.raises(ValueError, match="dtype='float16'"):
        kd.precompute_teacher_outputs(teacher, x, dtype="bfloat16")
    with pytest.raises(TypeError, match="keras.Model"):
        kd.precompute_teacher_outputs("teacher", x)
    with pytest.raises(ValueError, match="positive int"):
        kd.precompute_teacher_outputs(teacher, x, batch_size=0)
    logits = kd.precompute_teacher_outputs(teacher, x)
    with pytest.raises(ValueError, match="64 examples but `teacher_logits` has 32"):
        kd.with_teacher_outputs(y, logits[:32])
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="sgd", loss=CE)
    stacked = np.stack([logits, logits], axis=1)
    with pytest.raises(ValueError, match=r"shape \(64, 2, 10\).*\(None, 10\)"):
        distiller.fit(x, kd.with_teacher_outputs(y, stacked), verbose=0)
    with pytest.raises(ValueError, match="shape"):
        distiller.evaluate(x, kd.with_teacher_outputs(y, logits[:, :5]), verbose=0)
    hint = kd.FeatureDistiller(
        student=make_mlp(8, name="thin"),
        teacher=make_mlp(32, name="wide"),
        pairs=[("wide_hidden", "thin_hidden")],
        projections="auto",
    )
    hint.compile(optimizer="sgd", loss=CE, feature_weight=1.0)
    with pytest.raises(ValueError, match="intermediate features"):
        hint.fit(x, kd.with_teacher_outputs(y, logits), verbose=0)
