"""FedAvg, FedProx and FedOpt: the client's local training and the server's aggregation.

Local training (`LocalTrainer`) minimizes the task loss plus FedProx's proximal
term mu/2 * ||w - w_global||^2 (mu = 0 is FedAvg), so a client on skewed data
cannot pull the model far from the global one. The server (`FleetStrategy`)
samples a fraction of the clients (seeded, by partition id: `sample_partitions`),
decodes whatever encoding each update came in (see compression), averages the
updates weighted by sample count (under SecAgg+ it receives that mean unmasked, scaled:
see secure), applies the mean with its server optimizer
(`ServerOptimizer`: FedAvg, FedAvgM, FedAdam, FedYogi), and records per round
what it saw: sampled, answered and failed clients, the serialized bytes each
client uploaded, and the server-side test score.
A round with fewer answers than `min_clients` keeps the previous model. With
`oversample` a round samples more clients as they fail to answer (dropouts,
stragglers): the wanted number over the share of sampled clients that answered
so far, so a round still expects as many answers as its fraction asks for.
With `statistics_round` one more round follows the last: its clients train nothing and send their
data's exact batch-norm statistics under the final weights (set_batch_statistics), pooled like
any round's (so plain, compressed and secure aggregation carry them); the weights stay as they were.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from flwr.common import FitIns, FitRes, GetPropertiesIns, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg

from mcuforge.errors import MCUForgeError
from mcuforge.spec import FederatedSpec, TrainSpec
from mcuforge.train.federated.compression import decode_update
from mcuforge.train.federated.reproducible import reseed_dropout
from mcuforge.train.federated.secure import unscale_update, update_scales

PARTITION_PROPERTY = "partition-id"  # what a client answers get_properties with: which data it holds
STATISTICS_ONLY = "statistics-only"  # a fit config key: send the data's batch-norm statistics under the global weights, no training
CLIENT_START_SECONDS = 600.0  # how long the first question to a node may take: its process loads the data set and model
SECOND_MOMENT_DECAY, FEDOPT_TAU = 0.99, 1e-3  # Reddi et al. 2021's second-moment decay and adaptivity


class LocalTrainer:
    """A client's local training for one model, traced once per process and reused every round.

    `fit` minimizes the task loss plus mu/2 * ||w - w_anchor||^2 from the model's current
    (global) weights, with a fresh Adam each round (its moments and step count zeroed) and its
    dropout masks drawn afresh from `seed` (a model built under reproducible.seedable_dropout), then
    sets the batch-norm statistics to the client's own data's. The task loss is a classifier's
    cross-entropy, or with `reconstruction` an autoencoder's mean squared error (an anomaly
    detector learns to reproduce its own healthy windows: call fit(x, x, ...)).
    """

    def __init__(self, model, learning_rate: float, reconstruction: bool = False):
        import tensorflow as tf
        import tf_keras

        self.model = model
        trainable = model.trainable_weights
        self.anchor = [tf.Variable(v, trainable=False) for v in trainable]
        self.mu = tf.Variable(0.0, trainable=False)
        self.optimizer = tf_keras.optimizers.Adam(learning_rate)
        self.optimizer.build(trainable)
        loss_fn = tf_keras.losses.MeanSquaredError() if reconstruction else tf_keras.losses.SparseCategoricalCrossentropy()

        @tf.function(reduce_retracing=True)
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
                proximal = tf.add_n([tf.reduce_sum(tf.square(v - a)) for v, a in zip(trainable, self.anchor)])
                total = loss + (self.mu / 2.0) * proximal
            self.optimizer.apply_gradients(zip(tape.gradient(total, trainable), trainable))
            return loss

        self.step = step

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, mu: float, seed: int,
            learning_rate: float | None = None) -> float:
        """Train in place from the current weights (at `learning_rate`, else the last one); returns the last epoch's mean loss."""
        if learning_rate is not None:
            self.optimizer.learning_rate = learning_rate
        for anchor, v in zip(self.anchor, self.model.trainable_weights):
            anchor.assign(v)
        for v in self.optimizer.variables:
            v.assign(np.zeros(v.shape, v.dtype.as_numpy_dtype))
        self.mu.assign(mu)
        reseed_dropout(self.model, seed)
        rng = np.random.default_rng(seed)
        loss = 0.0
        for _ in range(epochs):
            batches = np.array_split(rng.permutation(len(x)), max(1, int(np.ceil(len(x) / batch_size))))
            loss = float(np.mean([float(self.step(x[batch], y[batch])) for batch in batches]))
        set_batch_statistics(self.model, x)
        return loss


def round_learning_rate(train: TrainSpec, settings: FederatedSpec, server_round: int) -> float:
    """The clients' learning rate in `server_round`: train.learning_rate, or with `decay_over_rounds` train.lr_schedule
    taken over the rounds (central training takes it over its steps: both end their last epochs at the low rate)."""
    if not settings.decay_over_rounds:
        return train.learning_rate
    from mcuforge.train.trainer import learning_rate_schedule

    schedule = learning_rate_schedule(train, settings.rounds)
    return float(schedule(server_round - 1)) if callable(schedule) else schedule


def set_batch_statistics(model, x: np.ndarray) -> None:
    """Set every batch-norm layer's moving mean and variance to the exact statistics of `x` under the model's weights.

    A client's few local steps move the moving averages (momentum 0.99) only a few percent
    from the global ones, so after many rounds the server's model would still normalize
    with its initial statistics and predict one class; the server averages these instead.
    One forward pass in training mode over all of `x`: each layer normalizes with the batch's
    statistics, which are then its exact ones, so every layer sees what it will see at inference.
    """
    import tf_keras

    norms = [layer for layer in model.submodules if isinstance(layer, tf_keras.layers.BatchNormalization)]
    if not norms:
        return
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)  # eager: reads momentum 0, so moving statistics := this batch's
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def uploaded_bytes(fit_res: FitRes) -> int:
    """The serialized size of what a client sent: its FitRes as the record Flower puts on the wire."""
    from flwr.common.serde import recorddict_to_proto
    from flwr.compat.common.recorddict_compat import fitres_to_recorddict

    return recorddict_to_proto(fitres_to_recorddict(fit_res, keep_input=True)).ByteSize()


def failure_reason(failure) -> str:
    """A client failure in one line: a failure reply's reason (secure.client_mods makes it our own message),
    the last line of the client's exception, or its error status."""
    from flwr.common import Error

    if isinstance(failure, BaseException) and failure.args and isinstance(failure.args[0], Error):
        failure = failure.args[0].reason
    if isinstance(failure, (BaseException, str)):
        lines = [line.strip() for line in str(failure).strip().splitlines() if line.strip()]
        return lines[-1] if lines else type(failure).__name__
    return failure[1].status.message


@dataclass
class RoundRecord:
    """What the server saw in one round."""

    round: int
    sampled: int
    answered: int = 0
    failed: int = 0
    aggregated: bool = False
    clients: list[int] = field(default_factory=list)  # the partition ids that answered
    sampled_clients: list[int] = field(default_factory=list)  # the partition ids sampled
    uploaded_bytes: list[int] | None = None
    errors: list[str] = field(default_factory=list)
    test_loss: float | None = None
    test_accuracy: float | None = None
    seconds: float = 0.0


def batch_statistics(model) -> list[bool]:
    """Which of `model.get_weights()` are batch-norm statistics (averaged, never stepped or rounded)."""
    statistics = {id(v) for v in model.non_trainable_weights}
    return [id(v) in statistics for v in model.weights]


def variance_means(model) -> dict[int, int]:
    """Each batch-norm moving variance's index among `model.get_weights()`, mapped to its moving mean's."""
    import tf_keras

    index = {id(v): i for i, v in enumerate(model.weights)}
    norms = [m for m in model.submodules if isinstance(m, tf_keras.layers.BatchNormalization)]
    return {index[id(norm.moving_variance)]: index[id(norm.moving_mean)] for norm in norms}


def second_moments(weights: list[np.ndarray], variances: dict[int, int]) -> list[np.ndarray]:
    """A client's weights with each moving variance replaced by its data's second moment, var + mean^2.

    Averaging variances leaves out how far the clients' means lie apart (machines at other speeds,
    voices at other pitches); averaging second moments and then subtracting the averaged mean's
    square (`pooled_variances`) gives the variance of all the clients' data together, and it is
    still a weighted mean, so plain, compressed and secure aggregation all carry it.
    """
    moments = list(weights)
    for variance, mean in variances.items():
        moments[variance] = (weights[variance] + np.square(weights[mean])).astype(np.float32)
    return moments


def pooled_variances(weights: list[np.ndarray], variances: dict[int, int]) -> list[np.ndarray]:
    """Aggregated weights whose variance slots hold averaged second moments, back to variances."""
    pooled = list(weights)
    for variance, mean in variances.items():
        pooled[variance] = np.maximum(weights[variance] - np.square(weights[mean]), 0.0).astype(np.float32)
    return pooled


def sample_partitions(seed: int, server_round: int, partitions: list[int], count: int) -> list[int]:
    """The `count` partition ids a round samples: a function of (seed, round, the available ids) only.

    Flower's sampler draws from Python's unseeded `random` over random node ids;
    this one does not see node ids or the order the clients connected in.
    """
    rng = np.random.default_rng([seed, server_round, 0x5A3])
    return sorted(int(p) for p in rng.choice(sorted(partitions), size=count, replace=False))


class ServerOptimizer:
    """Steps the global weights along the clients' mean update (the negated pseudo-gradient, Reddi et al. 2021).

    sgd: m = momentum * m + u, w += lr * m (FedAvgM, Hsu et al. 2019; lr 1, momentum 0 is FedAvg).
    adam, yogi: m = b1 * m + (1 - b1) * u, v tracks u^2 (Adam's average, or Yogi's additive
    step that grows v slowly), w += lr * m / (sqrt(v) + tau); a per-weight step that keeps
    moving weights the clients' skewed updates keep cancelling out.
    Batch-norm statistics are averages of the clients' data, not parameters: they take the mean.
    """

    def __init__(self, kind: str, learning_rate: float, momentum: float, statistics: list[bool]):
        self.kind, self.learning_rate, self.momentum = kind, learning_rate, momentum
        self.statistics = statistics
        self.first: list[np.ndarray] | None = None
        self.second: list[np.ndarray] | None = None

    def step(self, weights: list[np.ndarray], update: list[np.ndarray]) -> list[np.ndarray]:
        if self.first is None:
            self.first = [np.zeros_like(u) for u in update]
            self.second = [np.zeros_like(u) for u in update]
        stepped = []
        for i, (w, u) in enumerate(zip(weights, update)):
            if self.statistics[i]:
                stepped.append(w + u)
                continue
            if self.kind == "sgd":
                self.first[i] = self.momentum * self.first[i] + u
                stepped.append(w + self.learning_rate * self.first[i])
                continue
            self.first[i] = self.momentum * self.first[i] + (1 - self.momentum) * u
            square = u * u
            if self.kind == "adam":
                self.second[i] = SECOND_MOMENT_DECAY * self.second[i] + (1 - SECOND_MOMENT_DECAY) * square
            else:
                self.second[i] = self.second[i] - (1 - SECOND_MOMENT_DECAY) * square * np.sign(self.second[i] - square)
            stepped.append(w + self.learning_rate * self.first[i] / (np.sqrt(self.second[i]) + FEDOPT_TAU))
        return [s.astype(np.float32) for s in stepped]


class FleetStrategy(FedAvg):
    """FedAvg/FedProx/FedOpt over compressed or plain updates, recording each round (see the module docstring).

    `seed` seeds the sampling; `statistics` marks the batch-norm statistics among the weights (batch_statistics);
    `variances` pairs each moving variance with its mean (variance_means): clients send second moments there.
    """

    def __init__(
        self, settings: FederatedSpec, clients: int, initial_weights: list[np.ndarray], evaluate_fn,
        *, seed: int, statistics: list[bool], variances: dict[int, int], on_round=lambda record: None,
    ):
        super().__init__(
            fraction_fit=settings.fraction,
            fraction_evaluate=0.0,
            min_fit_clients=max(1, round(settings.fraction * clients)),
            min_available_clients=clients,
            evaluate_fn=evaluate_fn,
            accept_failures=True,
            initial_parameters=ndarrays_to_parameters(initial_weights),
        )
        self.settings = settings
        self.seed = seed
        self.statistics = statistics
        self.variances = variances
        self.optimizer = ServerOptimizer(settings.server_optimizer, settings.server_learning_rate, settings.server_momentum, statistics)
        self.partition_of: dict[int, int] = {}  # node id -> the partition id its client reported
        self.global_weights = [np.asarray(w, np.float32) for w in initial_weights]
        self.records: list[RoundRecord] = []
        self.scales: dict[str, bytes] = {}  # under SecAgg+, the scales announced to this round's clients
        self.asked = self.answers = 0  # clients sampled, and how many of them answered, in the rounds so far
        self.on_round = on_round
        self._started = time.perf_counter()

    @property
    def server_rounds(self) -> int:
        """How many rounds the server runs: the training rounds, then the statistics round when it is on."""
        return self.settings.rounds + self.settings.statistics_round

    def is_statistics_round(self, server_round: int) -> bool:
        """Whether `server_round` is the statistics round (the one after the last training round)."""
        return server_round > self.settings.rounds

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        self.global_weights = parameters_to_ndarrays(parameters)
        self._started = time.perf_counter()
        client_manager.wait_for(self.min_available_clients)
        by_partition = self._partitions(list(client_manager.all().values()), server_round)
        wanted, _ = self.num_fit_clients(len(by_partition))
        sampled = sample_partitions(self.seed, server_round, list(by_partition), self.to_sample(wanted, len(by_partition)))
        config: dict[str, Scalar] = {"round": server_round, STATISTICS_ONLY: self.is_statistics_round(server_round)}
        if self.settings.secure_aggregation is not None:
            statistics_seen = any(record.aggregated for record in self.records)
            self.scales = update_scales(second_moments(self.global_weights, self.variances), self.statistics, statistics_seen)
            config.update(self.scales)
        self.records.append(RoundRecord(server_round, len(sampled), sampled_clients=sampled))
        return [(by_partition[p], FitIns(parameters, config)) for p in sampled]

    def to_sample(self, wanted: int, available: int) -> int:
        """How many clients to sample for `wanted` answers: with `oversample`, `wanted` over the answer rate so far."""
        if not self.settings.oversample or self.asked == 0:
            return wanted
        if self.answers == 0:
            return available
        return min(available, max(wanted, round(wanted * self.asked / self.answers)))

    def _partitions(self, proxies: list[ClientProxy], server_round: int) -> dict[int, ClientProxy]:
        """The available clients by partition id, asking each node once which partition it holds."""
        def ask(proxy: ClientProxy) -> int:
            answer = proxy.get_properties(GetPropertiesIns({}), timeout=CLIENT_START_SECONDS, group_id=server_round)
            return int(answer.properties[PARTITION_PROPERTY])

        unknown = [proxy for proxy in proxies if proxy.node_id not in self.partition_of]
        if unknown:  # at once, so every client process starts (and loads its data) before the first round's clock
            with ThreadPoolExecutor(len(unknown)) as pool:
                self.partition_of.update(zip([proxy.node_id for proxy in unknown], pool.map(ask, unknown)))
        by_partition = {self.partition_of[proxy.node_id]: proxy for proxy in proxies}
        if len(by_partition) < len(proxies):
            held = sorted(self.partition_of[proxy.node_id] for proxy in proxies)
            raise MCUForgeError(f"two nodes hold the same partition ({held}): give each SuperNode its own partition-id")
        return by_partition

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures) -> tuple[Parameters | None, dict[str, Scalar]]:
        record = self.records[-1]
        record.answered, record.failed = len(results), len(failures)
        self.asked, self.answers = self.asked + record.sampled, self.answers + record.answered
        record.errors = sorted({failure_reason(f) for f in failures})
        record.clients = sorted(int(res.metrics["client"]) for _, res in results)
        record.uploaded_bytes = sorted(uploaded_bytes(res) for _, res in results)
        if len(results) < self.settings.min_clients:
            return None, {}
        # Updates are taken against the global weights with second moments in the variances' slots (what clients send).
        reference = second_moments(self.global_weights, self.variances)
        if self.settings.secure_aggregation is not None:  # every result holds the same unmasked, weighted mean
            mean_update = unscale_update(parameters_to_ndarrays(results[0][1].parameters), self.scales)
        else:
            mean_update = [np.zeros_like(g) for g in reference]
            total = sum(res.num_examples for _, res in results)
            for _, res in sorted(results, key=lambda result: int(result[1].metrics["client"])):  # arrival order varies
                update = decode_update(res.parameters.tensors, res.parameters.tensor_type, reference, self.statistics)
                for acc, u in zip(mean_update, update):
                    acc += u * (res.num_examples / total)
        record.aggregated = True
        if self.is_statistics_round(server_round):  # the weights stay, the statistics are the pooled ones
            stepped = [r + u if statistic else r for r, u, statistic in zip(reference, mean_update, self.statistics)]
        else:
            stepped = self.optimizer.step(reference, mean_update)
        self.global_weights = pooled_variances(stepped, self.variances)
        return ndarrays_to_parameters(self.global_weights), {}

    def evaluate(self, server_round: int, parameters: Parameters):
        evaluated = super().evaluate(server_round, parameters)
        if server_round > 0 and self.records:
            record = self.records[-1]
            if evaluated is not None:
                record.test_loss, metrics = evaluated
                record.test_accuracy = float(metrics["accuracy"])
            record.seconds = time.perf_counter() - self._started
            self.on_round(record)
        return evaluated
