"""Teacher caches on disk: written in shards with a manifest, resumed after
an interruption, streamed back by `CachedTeacherOutputs`, refused when they
do not belong to the inputs or the teacher."""

import json
import os

import keras
import numpy as np
import pytest

import keras_distill as kd
from keras_distill import cache_directory
from tests.conftest import make_pair
from tests.conftest import trl_top_k

RNG = np.random.default_rng(0)
X = RNG.normal(size=(1000, 64)).astype("float32")
Y = RNG.integers(0, 10, 1000)


@pytest.fixture
def teacher():
    return make_pair()[1]


@pytest.mark.parametrize("top_k, dtype", [(None, "float32"), (None, "float16"), (3, "float16")])
def test_the_shards_hold_what_the_in_memory_cache_holds(teacher, tmp_path, top_k, dtype):
    expected = kd.precompute_teacher_outputs(teacher, X, top_k=top_k, dtype=dtype)
    # Shards of a multiple of the predict batch (256): the same batches, so
    # the same rounding, as the in-memory cache.
    path = kd.precompute_teacher_outputs(teacher, X, top_k=top_k, dtype=dtype, directory=tmp_path, shard_size=512)
    assert path == str(tmp_path)
    with open(tmp_path / "manifest.json") as handle:
        manifest = json.load(handle)
    assert manifest["examples"] == 1000 and manifest["top_k"] == top_k and manifest["dtype"] == dtype
    assert [entry["stop"] - entry["start"] for entry in manifest["shards"]] == [512, 488]
    # Plain NumPy files, readable without keras_distill.
    if top_k is None:
        stored = np.concatenate([np.load(tmp_path / f"shard-{i:05d}.logits.npy") for i in range(2)])
        assert stored.dtype == dtype
        np.testing.assert_array_equal(stored, expected)
    else:
        indices = np.concatenate([np.load(tmp_path / f"shard-{i:05d}.indices.npy") for i in range(2)])
        np.testing.assert_array_equal(indices, expected["top_k_indices"])


@pytest.mark.parametrize("top_k", [None, 4])
def test_training_from_the_directory_equals_training_from_memory(tmp_path, top_k):
    student, teacher = make_pair()
    start = student.get_weights()
    logits = kd.precompute_teacher_outputs(teacher, X, top_k=top_k)
    kd.precompute_teacher_outputs(teacher, X, directory=tmp_path, shard_size=256, top_k=top_k)

    def trained(data, **kwargs):
        student.set_weights(start)
        distiller = kd.Distiller(student=student, teacher=teacher)
        distiller.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        history = distiller.fit(*data, epochs=1, verbose=0, **kwargs)
        return student.get_weights(), history.history["loss"]

    in_memory, memory_loss = trained((X, kd.with_teacher_outputs(Y, logits)), batch_size=64, shuffle=False)
    # fit(shuffle=False): Keras shuffles a PyDataset's batches otherwise.
    streamed, stream_loss = trained(
        (kd.CachedTeacherOutputs(tmp_path, X, Y, batch_size=64, shuffle=False),), shuffle=False
    )
    np.testing.assert_allclose(stream_loss, memory_loss, rtol=1e-6)
    for a, b in zip(streamed, in_memory):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_each_epoch_shuffles_examples_and_outputs_together(teacher, tmp_path):
    logits = kd.precompute_teacher_outputs(teacher, X)
    kd.precompute_teacher_outputs(teacher, X, directory=tmp_path, shard_size=256)
    data = kd.CachedTeacherOutputs(tmp_path, X, Y, batch_size=64, seed=1)
    orders = []
    for _ in range(2):
        rows = []
        for index in range(len(data)):
            x, targets = data[index]
            found = [int(np.flatnonzero((X == row).all(axis=1))[0]) for row in x]
            np.testing.assert_array_equal(targets["teacher_logits"], logits[found])
            np.testing.assert_array_equal(targets["labels"], Y[found])
            rows += found
        assert sorted(rows) == list(range(1000))
        orders.append(rows)
        data.on_epoch_end()
    assert orders[0] != orders[1] and orders[0] != list(range(1000))


def test_each_process_reads_its_own_shards(teacher, tmp_path):
    kd.precompute_teacher_outputs(teacher, X, directory=tmp_path, shard_size=200)
    parts = [kd.CachedTeacherOutputs(tmp_path, X, batch_size=50, process_index=i, process_count=2) for i in (0, 1)]
    starts = [sorted(entry["start"] for entry in part.shards) for part in parts]
    assert starts == [[0, 400, 800], [200, 600]]
    assert sum(len(part) for part in parts) == 20


def test_an_interrupted_write_resumes_with_the_missing_shards(teacher, tmp_path, monkeypatch):
    expected = kd.precompute_teacher_outputs(teacher, X)
    original = cache_directory._take
    calls = []

    def interrupted(x, index):
        calls.append(index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(x, index)

    monkeypatch.setattr(cache_directory, "_take", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kd.precompute_teacher_outputs(teacher, X, directory=tmp_path, shard_size=300)
    with pytest.raises(ValueError, match="incomplete: 2 of 4 shards"):
        kd.CachedTeacherOutputs(tmp_path, X)
    monkeypatch.setattr(cache_directory, "_take", original)
    computed = []
    monkeypatch.setattr(cache_directory, "_take", lambda x, index: computed.append(index) or original(x, index))
    kd.precompute_teacher_outputs(teacher, X, directory=tmp_path, shard_size=300)
    assert computed == [slice(600, 900), slice(900, 1000)]
    data = kd.CachedTeacherOutputs(tmp_path, X, batch_size=100, shuffle=False)
    stored = np.concatenate([data[i][1]["teacher_logits"] for i in range(len(data))])
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6)


def test_a_cache_of_other_inputs_another_teacher_or_a_truncated_shard_is_refused(tmp_path):
    student, teacher = make_pair()
    kd.precompute_teacher_outputs(teacher, X, directory=tmp_path, shard_size=300)
    other = X.copy()
    other[5, 3] += 1.0
    with pytest.raises(ValueError, match="computed on other inputs than `x`"):
        kd.CachedTeacherOutputs(tmp_path, other, Y)
    with pytest.raises(ValueError, match="computed on other inputs"):
        kd.CachedTeacherOutputs(tmp_path, X[:500], Y[:500])
    with pytest.raises(ValueError, match="written for a teacher with other weights"):
        kd.CachedTeacherOutputs(tmp_path, X, Y, teacher=student)
    with pytest.raises(ValueError, match="holds a teacher cache written with other settings"):
        kd.precompute_teacher_outputs(student, X, directory=tmp_path, shard_size=300)
    shard = tmp_path / "shard-00002.logits.npy"
    shard.write_bytes(shard.read_bytes()[:-40])
    with pytest.raises(ValueError, match="Shard 2 .* is missing or truncated"):
        kd.CachedTeacherOutputs(tmp_path, X, Y)
    # The same call rewrites what is not complete.
    kd.precompute_teacher_outputs(teacher, X, directory=tmp_path, shard_size=300)
    kd.CachedTeacherOutputs(tmp_path, X, Y, teacher=teacher)
    with pytest.raises(ValueError, match="holds no teacher cache"):
        kd.CachedTeacherOutputs(tmp_path / "elsewhere", X, Y)


def test_a_dataset_cannot_be_cached_to_a_directory(teacher, tmp_path):
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices(X).batch(32)
    with pytest.raises(ValueError, match="caches arrays"):
        kd.precompute_teacher_outputs(teacher, dataset, directory=tmp_path)
    assert not os.listdir(tmp_path)


def test_fit_reads_each_shard_once_per_epoch(tmp_path):
    student, teacher = make_pair()
    kd.precompute_teacher_outputs(teacher, X, directory=tmp_path, shard_size=200)
    data = kd.CachedTeacherOutputs(tmp_path, X, Y, batch_size=50)
    loads = []
    original = data._shard

    def counting(position):
        if data._loaded[0] != position:
            loads.append(position)
        return original(position)

    data._shard = counting
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile("adam", "sparse_categorical_crossentropy")
    loads.clear()
    distiller.fit(data, epochs=2, verbose=0)  # Keras' shuffle=True default
    # 5 shards per epoch (and one for the pre-flight's look at batch 0): not
    # one per batch, as Keras' shuffling of the batches would make it.
    assert len(loads) <= 2 * 5 + 2, loads


@pytest.mark.parametrize("loss", ["reverse_kl", kd.losses.GeneralizedJSD(beta=0.3)], ids=["reverse_kl", "jsd"])
def test_top_k_teachers_take_every_divergence_live_from_memory_and_from_disk(teacher, tmp_path, loss):
    """The same numbers as TRL's top-k-plus-tail formula, whether the top-k
    comes from the live teacher, an in-memory cache or a directory."""
    x, y = X[:256], Y[:256]
    student = make_pair()[0]
    beta = 1.0 if loss == "reverse_kl" else 0.3
    expected = trl_top_k(teacher.predict(x, verbose=0), student.predict(x, verbose=0), 3, beta).mean()

    def evaluated(distiller, *data):
        distiller.compile(
            optimizer="sgd", loss="sparse_categorical_crossentropy", distillation_loss=loss, temperature=1.0
        )
        return distiller.evaluate(*data, batch_size=64, verbose=0, return_dict=True)["distillation_loss"]

    live = evaluated(kd.Distiller(student=student, teacher=teacher, teacher_top_k=3), x, y)
    cache = kd.precompute_teacher_outputs(teacher, x, top_k=3)
    memory = evaluated(kd.Distiller(student=student, teacher=teacher), x, kd.with_teacher_outputs(y, cache))
    kd.precompute_teacher_outputs(teacher, x, top_k=3, directory=tmp_path, shard_size=100)
    disk = evaluated(
        kd.Distiller(student=student, teacher=teacher),
        kd.CachedTeacherOutputs(tmp_path, x, y, batch_size=64, shuffle=False),
    )
    for name, value in {"live": live, "memory": memory, "disk": disk}.items():
        np.testing.assert_allclose(value, expected, rtol=1e-3, err_msg=name)
