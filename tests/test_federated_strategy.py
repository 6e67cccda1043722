"""FedAvg/FedProx without a simulation: the proximal term in local training, the server's weighted average."""

import numpy as np
import pytest
from flwr.common import Code, FitRes, Parameters, Status, ndarrays_to_parameters, parameters_to_ndarrays

from mcuforge.spec import FederatedSpec
from mcuforge.train.federated import compression
from mcuforge.train.federated.strategy import FleetStrategy, LocalTrainer, RoundRecord


def tiny_model():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential([tf_keras.layers.Input((4,)), tf_keras.layers.Dense(8, activation="relu"),
                                tf_keras.layers.Dense(3, activation="softmax")])


def drift(mu):
    """How far local training moves the weights from where it started (the global model)."""
    model = tiny_model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    start = model.get_weights()
    trainer = LocalTrainer(model, learning_rate=0.05)
    trainer.fit(x, y, epochs=5, batch_size=16, mu=mu, seed=0)
    first = [w.copy() for w in model.get_weights()]
    model.set_weights(start)
    trainer.fit(x, y, epochs=5, batch_size=16, mu=mu, seed=0)  # a second round: fresh optimizer, new anchor
    np.testing.assert_allclose(np.concatenate([w.ravel() for w in model.get_weights()]),
                               np.concatenate([w.ravel() for w in first]), atol=1e-5)
    return float(np.sqrt(sum(np.sum((w - s) ** 2) for w, s in zip(first, start))))


def test_the_proximal_term_keeps_local_weights_near_the_global_ones():
    fedavg, fedprox = drift(0.0), drift(10.0)
    assert fedavg > 0.1
    assert fedprox < 0.5 * fedavg


class Proxy:
    def __init__(self, cid):
        self.cid = cid


def result(parameters, examples, client):
    return Proxy(str(client)), FitRes(Status(Code.OK, "ok"), parameters, examples, {"client": client})


def strategy(weights, **settings):
    return FleetStrategy(FederatedSpec(**settings), clients=3, initial_weights=weights, evaluate_fn=None)


def test_the_server_averages_plain_and_compressed_updates_weighted_by_samples():
    rng = np.random.default_rng(1)
    global_weights = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)]
    local = [[g + rng.normal(0, 0.01, g.shape).astype(np.float32) for g in global_weights] for _ in range(3)]
    examples = [10, 30, 60]
    server = strategy(global_weights)
    server.records = [RoundRecord(1, sampled=3)]  # aggregate_fit writes into the round's record
    plain = [result(ndarrays_to_parameters(w), n, c) for c, (w, n) in enumerate(zip(local, examples))]
    aggregated, _ = server.aggregate_fit(1, plain, [])
    expected = [np.average(np.stack([w[i] for w in local]), axis=0, weights=examples) for i in range(2)]
    for got, want in zip(parameters_to_ndarrays(aggregated), expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert server.records[0].clients == [0, 1, 2] and server.records[0].aggregated

    server = strategy(global_weights)
    server.records = [RoundRecord(1, sampled=3)]
    int8 = []
    for c, (w, n) in enumerate(zip(local, examples)):
        tensors, _ = compression.encode_update([a - g for a, g in zip(w, global_weights)], "int8", 0.1, None)
        int8.append(result(Parameters(tensors, compression.INT8), n, c))
    aggregated, _ = server.aggregate_fit(1, int8, [])
    for got, want in zip(parameters_to_ndarrays(aggregated), expected):
        np.testing.assert_allclose(got, want, atol=0.01 / 127 * 4)  # within the int8 steps of the updates


def test_a_round_with_too_few_answers_keeps_the_model():
    weights = [np.zeros((2, 2), np.float32)]
    server = strategy(weights, min_clients=2)
    server.records = [RoundRecord(1, sampled=3)]
    kept, _ = server.aggregate_fit(1, [result(ndarrays_to_parameters([np.ones((2, 2), np.float32)]), 5, 0)], [RuntimeError("x")])
    assert kept is None and not server.records[0].aggregated  # Flower keeps the previous parameters on None
    assert server.records[0].errors == ["x"] and server.records[0].failed == 1


def test_local_training_leaves_the_clients_own_batch_norm_statistics():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.layers.Input((4,)), tf_keras.layers.BatchNormalization(),
                                 tf_keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(40, 4)).astype(np.float32)  # far from the initial statistics (0, 1)
    LocalTrainer(model, learning_rate=0.01).fit(x, rng.integers(0, 3, 40), epochs=1, batch_size=16, mu=0.0, seed=0)
    norm = model.layers[0]
    np.testing.assert_allclose(norm.moving_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), x.var(axis=0), rtol=1e-4)
    assert norm.momentum == 0.99  # restored for later training
