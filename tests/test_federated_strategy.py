"""FedAvg/FedProx/FedOpt without a simulation: the proximal term in local training, the server's weighted
average and server optimizers, the seeded choice of clients."""

import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.common import Code, Context, FitRes, Parameters, RecordDict, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import SimpleClientManager
from flwr.server.strategy import FedAdam, FedAvgM, FedYogi

from mcuforge.errors import MCUForgeError
from mcuforge.spec import FederatedSpec
from mcuforge.train.federated import compression
from mcuforge.train.federated.apps import DeviceClient
from mcuforge.train.federated.strategy import FleetStrategy, LocalTrainer, RoundRecord, variance_means


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
    return FleetStrategy(FederatedSpec(**settings), clients=3, initial_weights=weights, evaluate_fn=None,
                         seed=0, statistics=[False] * len(weights), variances={})


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
        tensors, _ = compression.encode_update([a - g for a, g in zip(w, global_weights)], "int8", 0.1, None, [False, False])
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


def fedopt_rounds(server, rounds, clients, examples):
    """The global weights after each of `rounds` rounds in which `clients` answer with random local weights.

    `server` is a FleetStrategy or one of Flower's own strategies; the local weights come from the round's
    global weights plus a seeded random step, so both see the same rounds.
    """
    rng = np.random.default_rng(3)
    weights = [np.ones((3, 2), np.float32), np.zeros(2, np.float32)]
    history = []
    for server_round in range(1, rounds + 1):
        if isinstance(server, FleetStrategy):
            server.records.append(RoundRecord(server_round, sampled=clients))
        answers = [result(ndarrays_to_parameters([w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in weights]), n, c)
                   for c, n in zip(range(clients), examples)]
        weights = parameters_to_ndarrays(server.aggregate_fit(server_round, answers, [])[0])
        history.append(weights)
    return history


@pytest.mark.parametrize("ours, flowers", [
    ({"server_optimizer": "sgd", "server_learning_rate": 0.7, "server_momentum": 0.9},
     lambda initial: FedAvgM(initial_parameters=initial, server_learning_rate=0.7, server_momentum=0.9)),
    ({"server_optimizer": "yogi", "server_learning_rate": 0.05, "server_momentum": 0.8},
     lambda initial: FedYogi(initial_parameters=initial, eta=0.05, beta_1=0.8, beta_2=0.99, tau=1e-3)),
])
def test_server_optimizers_step_as_flowers_fedavgm_and_fedyogi(ours, flowers):
    initial = [np.ones((3, 2), np.float32), np.zeros(2, np.float32)]
    mine = fedopt_rounds(strategy(initial, **ours), 3, 3, [5, 10, 20])
    theirs = fedopt_rounds(flowers(ndarrays_to_parameters(initial)), 3, 3, [5, 10, 20])
    for got, want in zip(mine, theirs):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(mine[-1][0], mine[0][0])  # the rounds moved the model


def test_fedadam_moments_follow_flowers_fedadam():
    # Flower's FedAdam scales its step by a bias correction Reddi et al.'s FedAdam has not; the moments
    # are the same (each round's mean update is the mean of the same seeded local steps in both runs).
    initial = [np.ones((3, 2), np.float32), np.zeros(2, np.float32)]
    ours = strategy(initial, server_optimizer="adam", server_learning_rate=0.05, server_momentum=0.8)
    theirs = FedAdam(initial_parameters=ndarrays_to_parameters(initial), eta=0.05, beta_1=0.8, beta_2=0.99, tau=1e-3)
    fedopt_rounds(ours, 3, 3, [5, 10, 20])
    fedopt_rounds(theirs, 3, 3, [5, 10, 20])
    for mine, flowers in [(ours.optimizer.first, theirs.m_t), (ours.optimizer.second, theirs.v_t)]:
        for a, b in zip(mine, flowers):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-9)
    assert np.all(ours.optimizer.second[0] > 0)


def test_batch_norm_statistics_pool_the_clients_data_under_a_server_optimizer():
    """Weights [kernel, moving mean, moving variance]: the server's mean and variance are those of all the
    clients' data together (numpy over the concatenation), not the mean of their variances."""
    rng = np.random.default_rng(3)
    data = [rng.normal(3.0, 1.0, size=(20, 2)), rng.normal(5.0, 1.5, size=(60, 2))]  # two machines far apart
    initial = [np.ones(2, np.float32), np.zeros(2, np.float32), np.ones(2, np.float32)]
    server = FleetStrategy(FederatedSpec(server_optimizer="yogi", server_learning_rate=0.1, server_momentum=0.9), clients=2, initial_weights=initial,
                           evaluate_fn=None, seed=0, statistics=[False, True, True], variances={2: 1})
    server.records = [RoundRecord(1, sampled=2)]
    # What a client sends: its kernel, its data's mean, and var + mean^2 in the variance's place.
    sent = [[np.full(2, 3.0, np.float32), x.mean(0).astype(np.float32), (x.var(0) + x.mean(0) ** 2).astype(np.float32)] for x in data]
    results = [result(ndarrays_to_parameters(w), len(x), c) for c, (w, x) in enumerate(zip(sent, data))]
    aggregated = parameters_to_ndarrays(server.aggregate_fit(1, results, [])[0])
    everything = np.concatenate(data)
    np.testing.assert_allclose(aggregated[1], everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(aggregated[2], everything.var(0), rtol=1e-4)  # Yogi never steps a statistic
    # The spread between the machines counts: means 3 and 5 at weights 1/4, 3/4 add 0.75 to the mean of the variances.
    assert np.all(aggregated[2] > np.average([x.var(0) for x in data], axis=0, weights=[len(x) for x in data]) + 0.5)
    # Yogi's first step from zero moments: lr * 0.1 u / (0.1 |u| + tau), nearly lr * sign(u) (u = 2 here).
    np.testing.assert_allclose(aggregated[0], [1.1, 1.1], rtol=1e-3)


def test_int4_updates_against_the_global_second_moments_pool_the_statistics():
    """Clients far from the global statistics send int4 updates taken against the global second moments
    (as DeviceClient does): the server's statistics are still those of all the data (numpy), to int8 steps."""
    rng = np.random.default_rng(5)
    data = [rng.normal(3.0, 1.0, size=(20, 2)), rng.normal(5.0, 1.5, size=(60, 2))]
    initial = [np.ones(2, np.float32), np.full(2, 4.0, np.float32), np.full(2, 2.0, np.float32)]
    variances, exact = {2: 1}, [False, True, True]
    server = FleetStrategy(FederatedSpec(), clients=2, initial_weights=initial, evaluate_fn=None, seed=0,
                           statistics=exact, variances=variances)
    server.records = [RoundRecord(1, sampled=2)]
    reference = [initial[0], initial[1], initial[2] + initial[1] ** 2]  # the global mean 4, second moment 2 + 16
    results = []
    for c, x in enumerate(data):
        sent = [np.full(2, 3.0, np.float32), x.mean(0), x.var(0) + x.mean(0) ** 2]
        delta = [(s - r).astype(np.float32) for s, r in zip(sent, reference)]
        tensors, _ = compression.encode_update(delta, "int4", 0.1, None, exact, np.random.default_rng(c))
        results.append(result(Parameters(tensors, compression.INT4), len(x), c))
    aggregated = parameters_to_ndarrays(server.aggregate_fit(1, results, [])[0])
    everything = np.concatenate(data)
    np.testing.assert_allclose(aggregated[0], [3.0, 3.0], atol=2 / 7 * (1 + 2**-7))  # 4-bit: within one step of the change 2
    np.testing.assert_allclose(aggregated[1], everything.mean(0), atol=0.01)
    np.testing.assert_allclose(aggregated[2], everything.var(0), atol=0.1)


def test_each_moving_variance_is_paired_with_its_own_layers_mean():
    import tf_keras

    inputs = tf_keras.Input((4,))
    x = tf_keras.layers.Dense(3, name="d")(inputs)
    x = tf_keras.layers.BatchNormalization(name="first")(x)
    x = tf_keras.layers.BatchNormalization(name="second", center=False)(x)
    model = tf_keras.Model(inputs, x)
    names = [v.name for v in model.weights]
    pairs = {names[v]: names[m] for v, m in variance_means(model).items()}
    assert pairs == {"second/moving_variance:0": "second/moving_mean:0", "first/moving_variance:0": "first/moving_mean:0"}


class Node:
    """A connected node as the server sees it: a random node id, and a device client that says which data it holds."""

    def __init__(self, node_id: int, partition: int):
        self.cid, self.node_id = str(node_id), node_id
        context = Context(run_id=0, node_id=node_id, node_config={"partition-id": partition}, state=RecordDict(), run_config={})
        self.client = DeviceClient("{}", context)

    def get_properties(self, ins, timeout, group_id):
        return self.client.get_properties(ins)


def sampled_per_round(seed, node_ids, arrival_order, rounds=5):
    manager = SimpleClientManager()
    for partition in arrival_order:
        manager.register(Node(int(node_ids[partition]), partition))
    server = FleetStrategy(FederatedSpec(fraction=0.5), clients=len(node_ids), initial_weights=[np.zeros(2, np.float32)],
                           evaluate_fn=None, seed=seed, statistics=[False], variances={})
    for server_round in range(1, rounds + 1):
        chosen = server.configure_fit(server_round, ndarrays_to_parameters([np.zeros(2, np.float32)]), manager)
        assert sorted(proxy.client.client for proxy, _ in chosen) == server.records[-1].sampled_clients
        assert all(ins.config["round"] == server_round for _, ins in chosen)
    return [record.sampled_clients for record in server.records]


def test_the_sampled_clients_follow_seed_and_round_not_node_ids_or_arrival_order():
    clients = 8
    rng = np.random.default_rng(11)  # Flower gives nodes random 64-bit ids
    first = sampled_per_round(0, rng.integers(1, 2**62, clients), range(clients))
    again = sampled_per_round(0, rng.integers(1, 2**62, clients), reversed(range(clients)))
    assert first == again
    assert all(len(set(s)) == clients // 2 and set(s) <= set(range(clients)) for s in first)
    assert len({tuple(s) for s in first}) > 1  # rounds sample different clients
    assert sampled_per_round(1, rng.integers(1, 2**62, clients), range(clients)) != first


def test_two_nodes_holding_one_partition_are_refused():
    manager = SimpleClientManager()
    for node_id, partition in [(101, 0), (102, 1), (103, 1)]:
        manager.register(Node(node_id, partition))
    server = FleetStrategy(FederatedSpec(fraction=0.5), clients=3, initial_weights=[np.zeros(2, np.float32)],
                           evaluate_fn=None, seed=0, statistics=[False], variances={})
    with pytest.raises(MCUForgeError, match=r"same partition \(\[0, 1, 1\]\)"):
        server.configure_fit(1, ndarrays_to_parameters([np.zeros(2, np.float32)]), manager)


def sample_sizes(oversample, answering):
    """How many clients each round samples (8 available, half wanted) when the first `answering[r]` of them answer."""
    manager = SimpleClientManager()
    for partition in range(8):
        manager.register(Node(100 + partition, partition))
    weights = [np.zeros(2, np.float32)]
    server = FleetStrategy(FederatedSpec(fraction=0.5, oversample=oversample), clients=8, initial_weights=weights,
                           evaluate_fn=None, seed=0, statistics=[False], variances={})
    sizes = []
    for server_round, answers in enumerate(answering, start=1):
        chosen = server.configure_fit(server_round, ndarrays_to_parameters(weights), manager)
        sizes.append(len(chosen))
        answers = min(answers, len(chosen))
        replies = [result(ndarrays_to_parameters(weights), 1, proxy.client.client) for proxy, _ in chosen[:answers]]
        server.aggregate_fit(server_round, replies, [RuntimeError("dropped")] * (len(chosen) - answers))
    return sizes


def test_rounds_sample_more_clients_as_fewer_of_them_answer():
    # 4 wanted. 2 of 4 answer: 4 / (2/4) = 8. 6 of 8: 8 of 12 so far, 4 * 12/8 = 6. 6 of 6: 14 of 18, 4 * 18/14 = 5.1 -> 5.
    assert sample_sizes(True, [2, 6, 6, 5]) == [4, 8, 6, 5]
    assert sample_sizes(True, [0, 8]) == [4, 8]  # nobody answered yet: every client
    assert sample_sizes(True, [4, 4, 4]) == [4, 4, 4]  # no faults, no oversampling
    assert sample_sizes(False, [2, 6, 6, 5]) == [4, 4, 4, 4]


def test_under_secagg_the_server_announces_power_of_two_scales_and_adds_the_mean_update_back():
    """Clients far from the initial batch-norm statistics (second moments near 2,600) send updates that fit the
    default clipping range of 8 once scaled by the announced powers of two; the server's statistics are still
    those of all the data together (numpy over the concatenation), and its kernel the clients' weighted mean."""
    from flwr.common import FitIns

    from mcuforge.spec import SecureAggregationSpec
    from mcuforge.train.federated.secure import SCALES_CONFIG, scale_update

    rng = np.random.default_rng(7)
    data = [rng.normal(50.0 + 3 * c, 2.0, size=(20 * (c + 1), 2)) for c in range(3)]
    kernel = np.array([0.4, -0.3], np.float32)
    initial = [kernel, np.zeros(2, np.float32), np.ones(2, np.float32)]  # kernel, moving mean, moving variance
    settings = FederatedSpec(fraction=1.0, secure_aggregation=SecureAggregationSpec())
    server = FleetStrategy(settings, clients=3, initial_weights=initial, evaluate_fn=None, seed=0,
                           statistics=[False, True, True], variances={2: 1})
    manager = SimpleClientManager()
    for partition in range(3):
        manager.register(Node(200 + partition, partition))

    def announced(server_round, weights):
        (_, ins), *_ = server.configure_fit(server_round, ndarrays_to_parameters(weights), manager)
        assert isinstance(ins, FitIns)
        return ins.config, list(np.frombuffer(ins.config[SCALES_CONFIG], np.int8))

    config, exponents = announced(1, initial)
    assert exponents == [0, 12, 12]  # kernel within 1; statistics no round has aggregated: 2^12
    locals_ = [[kernel + 0.01 * (c + 1), x.mean(0), x.var(0) + x.mean(0) ** 2] for c, x in enumerate(data)]
    reference = [kernel, np.zeros(2), np.ones(2)]  # the initial second moment: 1 + 0^2
    scaled = [scale_update([(w - r).astype(np.float32) for w, r in zip(local, reference)], config) for local in locals_]
    assert max(float(np.max(np.abs(t))) for sent in scaled for t in sent) <= settings.secure_aggregation.clipping_range
    counts = [len(x) for x in data]
    secagg_mean = [np.average(np.stack([sent[i] for sent in scaled]), axis=0, weights=counts) for i in range(3)]
    # SecAgg+'s workflow hands every answering client's result the same unmasked weighted mean.
    results = [result(ndarrays_to_parameters(secagg_mean), n, c) for c, n in enumerate(counts)]
    aggregated = parameters_to_ndarrays(server.aggregate_fit(1, results, [])[0])
    everything = np.concatenate(data)
    np.testing.assert_allclose(aggregated[0], kernel + np.average([0.01, 0.02, 0.03], weights=counts), atol=1e-6)
    np.testing.assert_allclose(aggregated[1], everything.mean(0), rtol=1e-6)
    np.testing.assert_allclose(aggregated[2], everything.var(0), rtol=1e-4)

    _, exponents = announced(2, aggregated)
    peaks = [np.max(np.abs(aggregated[0])), np.max(aggregated[1]), np.max(aggregated[2] + aggregated[1] ** 2)]
    assert exponents == [int(np.ceil(np.log2(max(p, 1.0)))) for p in peaks] and exponents[1:] == [6, 12]


def test_a_clients_failure_reply_is_named_in_the_round_record_and_the_stage_error():
    """Under SecAgg+ a client's refusal comes back as a failure reply (flwr's Error); run.check_aggregated, which
    the simulation and the deployment both call on the round records, names it instead of advising on dropout."""
    from flwr.common import Error
    from flwr.common.constant import ErrorCode

    from mcuforge.train.federated.run import check_aggregated

    refusal = "a model update of magnitude 0.2 exceeds federated.secure_aggregation.clipping_range=0.05: raise clipping_range above it"
    server = strategy([np.zeros(2, np.float32)])
    server.records = [RoundRecord(1, sampled=3)]
    kept, _ = server.aggregate_fit(1, [], [Exception(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=refusal))] * 3)
    assert kept is None and server.records[0].errors == [refusal] and server.records[0].failed == 3
    with pytest.raises(MCUForgeError, match="client errors: " + re.escape(refusal) + "$"):
        check_aggregated(server.records, server.settings)


def dropout_model():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential([tf_keras.layers.Input((4,)), tf_keras.layers.Dense(16, activation="relu"),
                                tf_keras.layers.Dropout(0.5), tf_keras.layers.Dense(3, activation="softmax")])


def test_a_clients_dropout_masks_follow_its_seed_not_what_its_process_trained_before():
    """A simulation process trains whichever clients Ray hands it: a fit must not depend on the fits before it."""
    from mcuforge.train.federated.reproducible import seedable_dropout

    with seedable_dropout():
        model = dropout_model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    start, trainer = model.get_weights(), LocalTrainer(model, learning_rate=0.05)

    def fit(seed):
        model.set_weights(start)
        trainer.fit(x, y, epochs=2, batch_size=8, mu=0.0, seed=seed)
        return np.concatenate([w.ravel() for w in model.get_weights()])

    first, other, again = fit(1), fit(2), fit(1)
    np.testing.assert_array_equal(again, first)
    assert np.max(np.abs(other - first)) > 1e-3  # the seed does reach the masks (and the batch order)


def test_a_model_whose_dropout_cannot_be_reseeded_is_refused():
    model = dropout_model()  # not under seedable_dropout: TensorFlow's process-wide stateful random ops
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="seedable_dropout"):
        LocalTrainer(model, learning_rate=0.05).fit(rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8),
                                                    epochs=1, batch_size=8, mu=0.0, seed=0)


def test_the_mean_update_does_not_depend_on_the_order_replies_arrive_in():
    rng = np.random.default_rng(2)
    global_weights = [rng.normal(size=(64, 64)).astype(np.float32)]
    replies = [result(ndarrays_to_parameters([g + rng.normal(0, 10.0 ** c, g.shape).astype(np.float32) for g in global_weights]), n, c)
               for c, n in enumerate([7, 13, 29, 31])]
    means = []
    for order in ([0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]):
        server = strategy(global_weights)
        server.records = [RoundRecord(1, sampled=4)]
        means.append(parameters_to_ndarrays(server.aggregate_fit(1, [replies[i] for i in order], [])[0]))
    for mean in means[1:]:
        np.testing.assert_array_equal(mean[0], means[0][0])


class VirtualClock:
    """time.monotonic and time.sleep on a clock that only sleeping moves: exact, whatever the machine's load."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class SlowGrid:
    """A grid whose replies become available `delays` seconds after they were pushed (None: never)."""

    def __init__(self, clock, delays):
        self.clock, self.delays, self.pulls = clock, delays, 0

    def push_messages(self, messages):
        return [str(i) for i in range(len(messages))]

    def pull_messages(self, ids):
        self.pulls += 1
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i))
                for i in ids if self.delays[int(i)] is not None and self.delays[int(i)] <= self.clock.now]


def fit_message():
    return SimpleNamespace(metadata=SimpleNamespace(message_type="train"))


def test_the_server_picks_up_replies_soon_after_they_come_and_stops_at_the_deadline(monkeypatch):
    """Flower's grid looks every 0.1 s (3 s over gRPC); SecAgg+'s four exchanges a round each paid that wait."""
    from mcuforge.train.federated import apps

    clock = VirtualClock()
    monkeypatch.setattr(apps, "time", clock)
    grid = SlowGrid(clock, [0.02, 0.03])
    replies = apps.RoundDeadline(grid, timeout=5.0).send_and_receive([fit_message(), fit_message()])
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["0", "1"]
    assert 0.03 <= clock.now <= 0.03 * 1.25  # within a quarter of the wait, not at Flower's next look (0.1 s)
    assert grid.pulls < 20  # without spinning
    clock.now, grid = 0.0, SlowGrid(clock, [0.5, 2.0])
    apps.RoundDeadline(grid, timeout=5.0).send_and_receive([fit_message(), fit_message()])
    assert 2.0 <= clock.now <= 2.0 + apps.REPLY_POLL_SECONDS[1]  # a long wait: within the longest interval

    clock.now, grid = 0.0, SlowGrid(clock, [0.01, None])  # one client never answers: the round closes at its deadline
    replies = apps.RoundDeadline(grid, timeout=30.0).send_and_receive([fit_message(), fit_message()])
    assert [r.metadata.reply_to_message_id for r in replies] == ["0"]
    assert clock.now == pytest.approx(30.0)
    assert grid.pulls <= 30 / apps.REPLY_POLL_SECONDS[1] + 30  # once the wait is long, at its longest interval


def test_the_statistics_round_pools_the_sampled_clients_exact_statistics_under_the_global_weights(monkeypatch):
    """The round after the last: sampled clients only run their data through the global weights (no training),
    and the server's batch-norm statistics become those of the first layer's outputs over their data together
    (numpy over the concatenation), its weights unmoved though a Yogi server with momentum would step them."""
    import tf_keras

    from mcuforge.train.federated import apps
    from mcuforge.train.federated.strategy import STATISTICS_ONLY, batch_statistics

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.layers.Input((3,)), tf_keras.layers.Dense(2), tf_keras.layers.BatchNormalization(),
                                 tf_keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(13)
    data = [rng.normal(2.0, 1.0, size=(30, 3)), rng.normal(-1.0, 2.0, size=(50, 3)), rng.normal(9.0, 1.0, size=(40, 3))]
    x = np.concatenate(data).astype(np.float32)
    partitions = [np.arange(0, 30), np.arange(30, 80), np.arange(80, 120)]
    settings = FederatedSpec(rounds=1, fraction=2 / 3, statistics_round=True, server_optimizer="yogi", server_momentum=0.9)
    spec = SimpleNamespace(federated=settings, train=SimpleNamespace(seed=0, batch_size=16))
    dataset = SimpleNamespace(x_train=x, y_train=np.zeros(len(x), int), task="classification")
    trainer = SimpleNamespace(fit=lambda *args, **kwargs: pytest.fail("the statistics round trained"))
    monkeypatch.setattr(apps, "_client_side", lambda text: (spec, dataset, partitions, model, trainer))
    initial = [w.copy() for w in model.get_weights()]
    server = FleetStrategy(settings, clients=3, initial_weights=initial, evaluate_fn=None, seed=0,
                           statistics=batch_statistics(model), variances=variance_means(model))
    manager = SimpleClientManager()
    for partition in range(3):
        manager.register(Node(300 + partition, partition))
    assert not any(ins.config[STATISTICS_ONLY] for _, ins in server.configure_fit(1, ndarrays_to_parameters(initial), manager))
    server.records.clear()
    server.optimizer.step(initial, [np.ones_like(w) for w in initial])  # momentum, as the training rounds leave it

    chosen = server.configure_fit(2, ndarrays_to_parameters(initial), manager)
    assert len(chosen) == 2 and all(ins.config[STATISTICS_ONLY] for _, ins in chosen)
    replies = [(proxy, proxy.client.fit(ins)) for proxy, ins in chosen]
    aggregated = parameters_to_ndarrays(server.aggregate_fit(2, replies, [])[0])
    sampled = np.concatenate([data[p] for p in server.records[-1].sampled_clients])
    kernel, bias = initial[0], initial[1]
    outputs = sampled @ kernel.astype(np.float64) + bias  # what the normalization sees under the global weights
    norm = model.layers[1]
    names = [v.name for v in model.weights]
    np.testing.assert_allclose(aggregated[names.index(norm.moving_mean.name)], outputs.mean(0), rtol=1e-4)
    np.testing.assert_allclose(aggregated[names.index(norm.moving_variance.name)], outputs.var(0), rtol=1e-3)
    for got, start, statistic in zip(aggregated, initial, batch_statistics(model)):
        if not statistic:
            np.testing.assert_array_equal(got, start)


def fitted_client(monkeypatch, server_round, **settings):
    """The local trainer of client 0 (30 of 40 samples) after its fit in `server_round` under these federated settings
    (train: batch size 16, cosine schedule from 0.01)."""
    from flwr.common import FitIns

    from mcuforge.spec import TrainSpec
    from mcuforge.train.federated import apps

    model = tiny_model()
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    spec = SimpleNamespace(federated=FederatedSpec(**settings), train=TrainSpec(batch_size=16, learning_rate=0.01, lr_schedule="cosine"))
    dataset = SimpleNamespace(x_train=x, y_train=y, task="classification")
    trainer = LocalTrainer(model, learning_rate=0.01)
    monkeypatch.setattr(apps, "_client_side", lambda text: (spec, dataset, [np.arange(30), np.arange(30, 40)], model, trainer))
    Node(7, 0).client.fit(FitIns(ndarrays_to_parameters(model.get_weights()), {"round": server_round}))
    return trainer


@pytest.mark.parametrize("local_batch_size, steps_an_epoch", [(None, 2), (8, 4)])
def test_a_client_trains_in_batches_of_the_local_batch_size_else_the_train_batch_size(monkeypatch, local_batch_size, steps_an_epoch):
    """A client holding 30 samples takes ceil(30 / 16) = 2 steps an epoch at train.batch_size 16, ceil(30 / 8) = 4 at
    federated.local_batch_size 8 (a client with few samples otherwise takes one step an epoch): counted by its optimizer."""
    trainer = fitted_client(monkeypatch, 1, local_epochs=2, local_batch_size=local_batch_size)
    assert int(trainer.optimizer.iterations) == 2 * steps_an_epoch


@pytest.mark.parametrize("decay, server_round, rate", [
    (False, 3, 0.01),
    (True, 3, 0.01 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * 2 / 4)))),  # cosine from 0.01 down to 1 % over 4 rounds
    (True, 4, 0.01 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * 3 / 4)))),
])
def test_with_decay_over_rounds_a_clients_learning_rate_follows_the_train_schedule_over_the_rounds(monkeypatch, decay, server_round, rate):
    trainer = fitted_client(monkeypatch, server_round, rounds=4, decay_over_rounds=decay)
    assert float(trainer.optimizer.learning_rate) == pytest.approx(rate, rel=1e-5)
