import os

import keras
import numpy as np
import pytest

import keras_distill as kd
from tests.conftest import make_mlp
from tests.conftest import numpy_kl
from tests.conftest import numpy_sparse_ce

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def cohort():
    return [make_mlp(8, name="a"), make_mlp(16, name="b"), make_mlp(12, name="c")]


def test_each_peers_loss_equals_numpy(digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    peers = cohort()
    learner = kd.MutualLearner(peers, temperature=2.0)
    learner.compile(optimizer="sgd", loss=SCCE, metrics=["accuracy"])
    z = [logits(peer, x) for peer in peers]
    expected = {}
    for k, peer in enumerate(peers):
        mimicry = np.mean([numpy_kl(z[j], z[k], 2.0).mean() for j in range(3) if j != k])
        expected[f"{peer.name}_loss"] = numpy_sparse_ce(y, z[k]).mean() + mimicry
        expected[f"{peer.name}_accuracy"] = np.mean(z[k].argmax(-1) == y)
    expected["loss"] = sum(expected[f"{peer.name}_loss"] for peer in peers)
    logs = learner.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert set(logs) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(logs[key], value, rtol=1e-5, err_msg=key)


def test_each_peers_loss_weighs_its_examples(digits):
    # Both terms of a peer's loss, the labels' and the mimicry, are means
    # over the examples weighted by sample_weight.
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    weights = np.random.default_rng(3).uniform(0.0, 2.0, 64).astype("float32")
    peers = cohort()
    learner = kd.MutualLearner(peers, temperature=3.0)
    learner.compile(optimizer="sgd", loss=SCCE)
    z = [logits(peer, x) for peer in peers]
    logs = learner.evaluate(x, y, sample_weight=weights, batch_size=len(x), verbose=0, return_dict=True)
    for k, peer in enumerate(peers):
        hard = np.sum(weights * numpy_sparse_ce(y, z[k])) / len(x)
        mimicry = np.mean([np.sum(weights * numpy_kl(z[j], z[k], 3.0)) / len(x) for j in range(3) if j != k])
        np.testing.assert_allclose(logs[f"{peer.name}_loss"], hard + mimicry, rtol=1e-5, err_msg=peer.name)


@pytest.mark.parametrize("jit_compile", [False, "auto"])
def test_a_peer_gets_gradient_from_its_own_loss_only(digits, jit_compile):
    """One SGD step of the cohort moves each peer exactly as a Distiller
    step on that peer's own loss with the other peer frozen: the other
    peer's loss, which reads this peer's prediction as a target, adds
    nothing (stop_gradient)."""
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    a, b = make_mlp(8, name="a"), make_mlp(16, name="b")
    references = {}
    for student, teacher in ((a, b), (b, a)):
        student_copy, teacher_copy = keras.models.clone_model(student), keras.models.clone_model(teacher)
        student_copy.set_weights(student.get_weights())
        teacher_copy.set_weights(teacher.get_weights())
        distiller = kd.Distiller(student=student_copy, teacher=teacher_copy)
        # alpha=0.5 halves both terms; twice the learning rate restores them.
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.2), loss=SCCE, alpha=0.5, temperature=1.0, jit_compile=jit_compile
        )
        distiller.train_on_batch(x, y)
        references[student.name] = student_copy.get_weights()
    learner = kd.MutualLearner([a, b])
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=SCCE, jit_compile=jit_compile)
    learner.train_on_batch(x, y)
    for peer in (a, b):
        for got, want in zip(peer.get_weights(), references[peer.name]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fit_history_predict_and_round_trip(digits, tmp_path):
    (x, y), (x_test, y_test) = digits
    peers = cohort()
    learner = kd.MutualLearner(peers)
    learner.compile(optimizer="adam", loss=SCCE, metrics=["accuracy"])
    history = learner.fit(x, y, epochs=2, validation_data=(x_test, y_test), verbose=0)
    for peer in peers:
        assert {f"{peer.name}_loss", f"val_{peer.name}_accuracy"} <= set(history.history)
    assert history.history["loss"][1] < history.history["loss"][0]
    everything = learner.predict(x_test, verbose=0)
    assert len(everything) == 3
    np.testing.assert_allclose(learner.predict(x_test, peer="b", verbose=0), everything[1], rtol=1e-6)
    np.testing.assert_allclose(
        learner.predict(x_test, peer=2, verbose=0), logits(peers[2], x_test), rtol=1e-5, atol=1e-6
    )
    path = os.path.join(tmp_path, "cohort.keras")
    learner.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, kd.MutualLearner) and loaded.compiled
    assert [m.name for m in loaded.models] == ["a", "b", "c"]
    np.testing.assert_allclose(
        loaded.evaluate(x_test, y_test, verbose=0), learner.evaluate(x_test, y_test, verbose=0), rtol=1e-5
    )
    learner.fit(x, y, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(learner.models[0].get_weights(), loaded.models[0].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    learner.models[0].save(os.path.join(tmp_path, "a.keras"))
    assert keras.saving.load_model(os.path.join(tmp_path, "a.keras")).name == "a"


def test_errors():
    a, b = make_mlp(8, name="a"), make_mlp(16, name="b")
    with pytest.raises(ValueError, match="at least two models"):
        kd.MutualLearner([a])
    with pytest.raises(ValueError, match="passed twice"):
        kd.MutualLearner([a, a])
    with pytest.raises(ValueError, match="names must differ"):
        kd.MutualLearner([a, make_mlp(4, name="a")])
    with pytest.raises(ValueError, match="same shape"):
        kd.MutualLearner([a, make_mlp(4, name="c", classes=5)])
    with pytest.raises(ValueError, match="ends in a softmax"):
        kd.MutualLearner([a, make_mlp(4, name="c", softmax=True)])
    learner = kd.MutualLearner([a, b])
    with pytest.raises(ValueError, match="needs a hard-label `loss`"):
        learner.compile(optimizer="adam")
    learner.compile(optimizer="adam", loss=SCCE)
    with pytest.raises(ValueError, match="Unknown peer 'z'"):
        learner.predict(np.zeros((2, 64), "float32"), peer="z", verbose=0)


def test_one_optimizer_per_peer(digits, tmp_path):
    """Peer a with SGD(0) never moves; peer b with SGD(0.1) moves as with a
    single SGD(0.1); the learner saves and trains on after loading."""
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    a, b = make_mlp(8, name="a"), make_mlp(16, name="b")
    a_before, b_before = a.get_weights(), b.get_weights()
    reference = kd.MutualLearner([keras.models.clone_model(a), keras.models.clone_model(b)])
    reference.models[0].set_weights(a_before)
    reference.models[1].set_weights(b_before)
    reference.compile(optimizer=keras.optimizers.SGD(0.1), loss=SCCE)
    reference.train_on_batch(x, y)
    learner = kd.MutualLearner([a, b])
    learner.compile(optimizer=[keras.optimizers.SGD(0.0), keras.optimizers.SGD(0.1)], loss=SCCE)
    learner.train_on_batch(x, y)
    for got, want in zip(a.get_weights(), a_before):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(b.get_weights(), reference.models[1].get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    path = os.path.join(tmp_path, "cohort.keras")
    learner.save(path)
    loaded = keras.saving.load_model(path)
    assert [float(o.learning_rate.numpy()) for o in loaded.optimizer.optimizers] == pytest.approx([0.0, 0.1])
    loaded.fit(x, y, epochs=1, verbose=0)
    for got, want in zip(loaded.models[0].get_weights(), a_before):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="2 optimizers for 3 peers|3 optimizers for 2 peers"):
        learner.compile(optimizer=["sgd", "sgd", "sgd"], loss=SCCE)
