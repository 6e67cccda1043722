"""Test oracle for federated rounds: FedAvg computed directly from the clients' own fits, in this process.

The clients run exactly as on a device (apps.DeviceClient), one after another
here; their weights are then averaged by sample count in float64, the formula
of FedAvg, with no Flower server, strategy or transport involved.
"""

import numpy as np
from flwr.common import Context, FitIns, RecordDict, ndarrays_to_parameters, parameters_to_ndarrays

from mcuforge.train.federated.apps import DeviceClient, spec_json
from mcuforge.train.federated.faults import ClientDropout


def client_fits(spec, clients: int, server_round: int, global_weights):
    """(weights, sample count) of every client that answers `server_round` from `global_weights`."""
    answers = []
    for client in range(clients):
        context = Context(run_id=0, node_id=client, node_config={"partition-id": client}, state=RecordDict(), run_config={})
        try:
            res = DeviceClient(spec_json(spec), context).fit(FitIns(ndarrays_to_parameters(global_weights), {"round": server_round}))
        except ClientDropout:
            continue
        answers.append((parameters_to_ndarrays(res.parameters), res.num_examples))
    return answers


def fedavg(answers):
    total = sum(count for _, count in answers)
    return [sum(weights[i].astype(np.float64) * count / total for weights, count in answers) for i in range(len(answers[0][0]))]
