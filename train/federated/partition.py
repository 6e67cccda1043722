"""Which training samples each federated client (device) holds: deterministic from the data seed.

Keywords: one client per training speaker (each voice is one device, natural
non-IID). Vibration: one client per machine of the data set's fleet (its own
shaft-speed range and load). Digits and gestures (and any other classifier data): a Dirichlet
label skew, each class's samples shared among the clients in proportions drawn
from Dirichlet(alpha), so a small alpha gives each client a few classes.
"""

from __future__ import annotations

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.spec import Spec
from mcuforge.train.datasets import ANOMALY, Dataset


def dirichlet_split(labels: np.ndarray, clients: int, alpha: float, seed: int) -> list[np.ndarray]:
    """Sample indices per client: every class split over the clients by Dirichlet(alpha) proportions.

    Every client gets at least one sample (a client with none could not train).
    """
    if len(labels) < clients:
        raise MCUForgeError(f"federated.clients: {clients} clients for {len(labels)} training samples; lower clients")
    rng = np.random.default_rng([seed, 0xFED])
    shares: list[list[int]] = [[] for _ in range(clients)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        proportions = rng.dirichlet(np.full(clients, alpha))
        cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
        for client, part in enumerate(np.split(members, cuts)):
            shares[client].extend(part.tolist())
    # Hand empty clients one sample from the largest, so the split stays a partition.
    for client in range(clients):
        if not shares[client]:
            donor = max(range(clients), key=lambda c: len(shares[c]))
            shares[client].append(shares[donor].pop())
    return [np.sort(np.array(share, dtype=np.int64)) for share in shares]


def group_split(groups: np.ndarray) -> list[np.ndarray]:
    """Sample indices per group id (a speaker, a machine), groups in ascending id order."""
    return [np.flatnonzero(groups == group) for group in np.unique(groups)]


def client_partitions(spec: Spec, dataset: Dataset) -> list[np.ndarray]:
    """The training-sample indices of every client of `spec`'s federated run."""
    from mcuforge.train import datasets

    if dataset.name == "vibration":
        from mcuforge.train.datasets.vibration import train_machine_ids

        options = datasets.parse_options(spec.data.dataset, spec.data.options)
        if options.machines == 0:
            raise MCUForgeError(
                "data.options.machines: federated training needs a classifier data set or a vibration fleet "
                "(one client per machine). Received: 0; set machines"
            )
        return group_split(train_machine_ids(options))
    if dataset.task == ANOMALY:
        raise MCUForgeError(
            f"data.dataset {dataset.name!r}: federated training needs a classifier data set "
            "(digits, keywords, gestures, npz or wav_folder) or vibration"
        )
    if dataset.name == "keywords":
        from mcuforge.train.datasets.keywords import train_speaker_ids

        options = datasets.parse_options(spec.data.dataset, spec.data.options)
        return group_split(train_speaker_ids(options, spec.data.seed, len(dataset.y_train)))
    return dirichlet_split(dataset.y_train, spec.federated.clients, spec.federated.alpha, spec.data.seed)
