"""The Flower apps: a ClientApp that is one device training on its own data, and the ServerApp.

The same apps run under the simulation engine (run.py) and as a deployment
(SuperLink and SuperNodes). A client finds its data from its partition id
(node config `partition-id`): the data set is loaded and split the same way in
every process (deterministic from the seed), so no data crosses process
boundaries, only the spec.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache

import numpy as np
from flwr.client import Client, ClientApp
from flwr.common import (
    ArrayRecord,
    Code,
    Context,
    FitIns,
    FitRes,
    GetPropertiesIns,
    GetPropertiesRes,
    MessageTypeLegacy,
    Parameters,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import LegacyContext, ServerApp, ServerConfig

from mcuforge.config import parse_dataclass, to_dict
from mcuforge.spec import Spec
from mcuforge.train.datasets import ANOMALY
from mcuforge.train.federated import compression, faults
from mcuforge.train.federated.secure import client_mods, scale_update, server_workflow
from mcuforge.train.federated.strategy import (
    CLIENT_START_SECONDS, PARTITION_PROPERTY, STATISTICS_ONLY, FleetStrategy, LocalTrainer, batch_statistics, round_learning_rate,
    second_moments, set_batch_statistics, variance_means,
)

RESIDUAL_RECORD = "topk_residual"  # the client's error-feedback residual, in its context state
REPLY_POLL_SECONDS, REPLY_POLL_GROWTH = (0.001, 0.02), 1.25  # the server's first and longest wait between looks for replies


@lru_cache(maxsize=2)
def _client_side(spec_json: str):
    """The data set, its client split and a model with its local trainer, once per process for a spec."""
    from mcuforge.train.federated.partition import client_partitions
    from mcuforge.train.federated.personalize import training_partitions
    from mcuforge.train.federated.reproducible import seedable_dropout
    from mcuforge.train.trainer import build_model, load_dataset

    spec = parse_dataclass(Spec, json.loads(spec_json))
    dataset = load_dataset(spec)
    partitions = training_partitions(spec, client_partitions(spec, dataset))
    with seedable_dropout():  # the trainer restarts the masks' generator each fit
        model = build_model(spec, dataset)
    trainer = LocalTrainer(model, spec.train.learning_rate, reconstruction=dataset.task == ANOMALY)
    return spec, dataset, partitions, model, trainer


def spec_json(spec: Spec) -> str:
    return json.dumps(to_dict(spec), sort_keys=True)


class DeviceClient(Client):
    """One device: trains the global model on its own samples and uploads its (compressed) update."""

    def __init__(self, spec_text: str, context: Context):
        self.spec_text = spec_text
        self.context = context
        self.client = int(context.node_config["partition-id"])

    def get_properties(self, ins: GetPropertiesIns) -> GetPropertiesRes:
        """Which partition this node holds: the server samples by partition id, not by node id."""
        return GetPropertiesRes(Status(Code.OK, "ok"), {PARTITION_PROPERTY: self.client})

    def fit(self, ins: FitIns) -> FitRes:
        spec, dataset, partitions, model, trainer = _client_side(self.spec_text)
        settings = spec.federated
        server_round = int(ins.config["round"])
        what = faults.fate(spec.train.seed, server_round, self.client, settings.dropout, settings.stragglers)
        faults.act(what, self.client, server_round, settings.straggler_seconds, settings.crash)
        indices = partitions[self.client]
        global_weights = parameters_to_ndarrays(ins.parameters)
        model.set_weights(global_weights)
        mu = settings.proximal_mu if settings.strategy == "fedprox" else 0.0
        x = dataset.x_train[indices]
        targets = x if dataset.task == ANOMALY else dataset.y_train[indices]  # an autoencoder reconstructs its input
        if ins.config.get(STATISTICS_ONLY):  # the statistics round: a forward pass, no training
            set_batch_statistics(model, x)
            loss = 0.0
        else:
            loss = trainer.fit(
                x, targets, settings.local_epochs, settings.local_batch_size or spec.train.batch_size, mu,
                seed=spec.train.seed * 100003 + server_round * 1009 + self.client,
                learning_rate=round_learning_rate(spec.train, settings, server_round),
            )
        variances = variance_means(model)
        local = second_moments(model.get_weights(), variances)
        metrics = {"loss": loss, "client": self.client}
        if settings.compression == "none" and settings.secure_aggregation is None:
            return FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(local), len(indices), metrics)
        # Against the global second moments: a variance's slot carries how this client's moment differs.
        delta = [(w - g).astype(np.float32) for w, g in zip(local, second_moments(global_weights, variances))]
        if settings.secure_aggregation is not None:  # scaled so one clipping range fits every tensor (secure.py)
            return FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(scale_update(delta, ins.config)), len(indices), metrics)
        residual = None
        if RESIDUAL_RECORD in self.context.state:
            residual = [a.numpy() for a in self.context.state[RESIDUAL_RECORD].values()]
        exact = batch_statistics(model)
        rounding = np.random.default_rng([spec.train.seed, server_round, self.client, 0x4B1])
        tensors, residual = compression.encode_update(
            delta, settings.compression, settings.topk_fraction, residual, exact, rounding,
        )
        if residual is not None:
            self.context.state[RESIDUAL_RECORD] = ArrayRecord(residual)
        parameters = Parameters(tensors, compression.TENSOR_TYPES[settings.compression])
        return FitRes(Status(Code.OK, "ok"), parameters, len(indices), metrics)


def started_device(spec_text: str, context: Context) -> DeviceClient:
    """The node's device, its process holding the data set and model (_client_side): the first message
    (the server asking every node at once which partition it holds) pays for loading them, before any round's deadline.
    Its TensorFlow runs deterministically (reproducible.py), set before the model's first op."""
    from mcuforge.train.federated.reproducible import deterministic_tensorflow

    deterministic_tensorflow()
    _client_side(spec_text)
    return DeviceClient(spec_text, context)


def client_app(spec: Spec) -> ClientApp:
    """The ClientApp for `spec`: each node is the client named by its `partition-id`."""
    text = spec_json(spec)
    return ClientApp(client_fn=lambda context: started_device(text, context), mods=client_mods(spec))


class RoundDeadline:
    """A Grid whose exchanges wait at most `timeout` seconds for replies when the caller sets no limit
    (the server's first question to each node, which partition it holds, at most CLIENT_START_SECONDS),
    and look for replies soon after they come.

    flwr 1.42's DefaultWorkflow ignores ServerConfig.round_timeout: its fit round waits for
    every sampled client, so one straggler stalls the whole run. Through this grid a round
    ends at the deadline with the replies that came; a late client's update is left out.

    Flower's grids look for replies every 0.1 s (in memory) or 3 s (a SuperLink over gRPC), and a
    SecAgg+ round is four exchanges where a plain one is one, each waiting for that look. Here the
    wait between looks starts at REPLY_POLL_SECONDS[0] and grows by REPLY_POLL_GROWTH up to
    REPLY_POLL_SECONDS[1]: a reply is picked up within a quarter of the time it took, or that
    longest wait, whichever is shorter (a look is one lookup in memory, one request to a SuperLink).
    """

    def __init__(self, grid, timeout: float | None):
        self.grid = grid
        self.timeout = timeout

    def send_and_receive(self, messages, *, timeout: float | None = None):
        messages = list(messages)
        if timeout is None:  # flwr's client proxies pass none: the start-up question gets its own, longer wait
            starting = all(message.metadata.message_type == MessageTypeLegacy.GET_PROPERTIES for message in messages)
            timeout = CLIENT_START_SECONDS if starting else self.timeout
        waiting = set(self.grid.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies, pause = [], REPLY_POLL_SECONDS[0]
        while True:
            pulled = list(self.grid.pull_messages(waiting))
            replies += pulled
            waiting -= {reply.metadata.reply_to_message_id for reply in pulled}
            left = None if deadline is None else deadline - time.monotonic()
            if not waiting or (left is not None and left <= 0):
                return replies
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * REPLY_POLL_GROWTH, REPLY_POLL_SECONDS[1])

    def __getattr__(self, name: str):
        return getattr(self.grid, name)


def serve(grid, context: Context, spec: Spec, strategy: FleetStrategy) -> None:
    """Run `spec.federated.rounds` rounds of `strategy` on `grid` (and the statistics round): plain or SecAgg+ (secure.server_workflow),
    each round closing after `round_timeout` seconds with the clients that answered by then."""
    settings = spec.federated
    partitions = _client_side(spec_json(spec))[2]
    config = ServerConfig(num_rounds=strategy.server_rounds, round_timeout=settings.round_timeout)
    legacy = LegacyContext(context=context, config=config, strategy=strategy)
    workflow = server_workflow(spec, max_weight=max(len(p) for p in partitions))
    workflow(RoundDeadline(grid, settings.round_timeout), legacy)


def server_app(spec: Spec, strategy: FleetStrategy) -> ServerApp:
    """The ServerApp running `spec.federated.rounds` rounds of `strategy`."""
    app = ServerApp()

    @app.main()
    def main(grid, context: Context) -> None:
        serve(grid, context, spec, strategy)

    return app
