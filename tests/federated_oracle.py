"""Test oracle for federated rounds: FedAvg computed directly from the clients' own fits, in this process.

The clients run exactly as on a device (apps.DeviceClient), one after another
here; their weights are then averaged by sample count in float64, the formula
of FedAvg, with no Flower server, strategy or transport involved. A client
sends each batch-norm moving variance as its second moment (var + mean^2);
`client_fits` turns it back into the client's own variance by the variables'
names, and `fedavg` pools the variances with the textbook formula, the
variance of all the clients' data together.
"""

from dataclasses import replace

import numpy as np
from flwr.common import Context, FitIns, RecordDict, ndarrays_to_parameters, parameters_to_ndarrays

from mcuforge.train.federated.apps import DeviceClient, spec_json
from mcuforge.train.federated.faults import ClientDropout


def _variance_slots(model) -> dict[int, int]:
    names = [v.name for v in model.weights]
    return {i: names.index(name.replace("moving_variance", "moving_mean")) for i, name in enumerate(names) if "moving_variance" in name}


def client_fits(spec, clients: int, server_round: int, model):
    """(weights, sample count) of every client that answers `server_round` from `model`'s weights.

    Under SecAgg+ a client trains the same and sends its update scaled and masked: the oracle takes its plain fit.
    """
    spec = replace(spec, federated=replace(spec.federated, secure_aggregation=None))
    global_weights, slots = model.get_weights(), _variance_slots(model)
    answers = []
    for client in range(clients):
        context = Context(run_id=0, node_id=client, node_config={"partition-id": client}, state=RecordDict(), run_config={})
        try:
            res = DeviceClient(spec_json(spec), context).fit(FitIns(ndarrays_to_parameters(global_weights), {"round": server_round}))
        except ClientDropout:
            continue
        weights = parameters_to_ndarrays(res.parameters)
        for variance, mean in slots.items():
            weights[variance] = weights[variance] - weights[mean].astype(np.float64) ** 2
        answers.append((weights, res.num_examples))
    return answers


def fedavg(answers, model):
    """The sample-weighted mean of every weight; moving variances pooled: E[var + mean^2] - E[mean]^2."""
    total = sum(count for _, count in answers)
    average = [sum(weights[i].astype(np.float64) * count / total for weights, count in answers) for i in range(len(answers[0][0]))]
    for variance, mean in _variance_slots(model).items():
        second = sum((weights[variance] + weights[mean].astype(np.float64) ** 2) * count / total for weights, count in answers)
        average[variance] = second - average[mean] ** 2
    return average
