"""SecAgg+ and personalization benchmark: wall-time overhead of secure aggregation, how far its model is
from plain FedAvg's, and the mean per-client gain of personalizing the head.

Runs on demand (two Flower simulations of the same fleet, minutes each on two cores):

    .venv/bin/python bench/federated_secagg.py [--spec specs/digits-federated.yaml] [--rounds 5] [--fraction 1.0]
        [--local-epochs 2] [--data-option speakers=80 ...] [--set strategy=fedprox ...] [--shares 3] [--threshold 2] [--root build]
        [--deployment]

The fleet is federated_keywords.py's (same options and base: FedAvg, no faults,
float32 updates, then --set), with a personalization section; the two runs
differ only in `secure_aggregation` and sample the same clients (seeded). Each
runs in its own process (federated_isolation), in Flower's simulation engine or
with --deployment through a local SuperLink and one SuperNode per client. Wall time is the rounds'
(not data loading or int8 conversion). Writes <root>/<name>/bench/secagg[-deployment].json.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from federated_isolation import in_own_process
from federated_keywords import fleet_arguments, fleet_spec
from mcuforge.artifacts import write_json_atomic
from mcuforge.results import PersonalizationResult
from mcuforge.spec import PersonalizationSpec, SecureAggregationSpec


def run(spec, directory: Path, root: Path, deployment: bool) -> dict:
    from mcuforge.pipeline import int8_test_accuracy
    from mcuforge.train.federated.deployment import Deployment
    from mcuforge.train.federated.run import federate
    from mcuforge.train.trainer import load_model

    started = time.perf_counter()
    result = federate(spec, directory, int8_test_accuracy, root, deployment=Deployment() if deployment else None)
    fed = result.metrics["federated"]
    personal = PersonalizationResult.load(directory)
    return {
        "wall_seconds": fed["wall_seconds"],
        "round_seconds": [round(r["seconds"], 2) for r in fed["rounds"]],
        "aggregated_rounds": sum(r["aggregated"] for r in fed["rounds"]),
        "float_accuracy": result.metrics["test"]["accuracy"],
        "int8_accuracy": fed["int8_test_accuracy"],
        "mean_personalization_gain": personal.mean_gain,
        "personalization": [[c.client, c.global_accuracy, c.personalized_accuracy] for c in personal.clients],
        "stage_seconds": round(time.perf_counter() - started, 1),
        "weights": load_model(directory / result.model).get_weights(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fleet_arguments(parser)
    parser.set_defaults(spec=Path("specs/digits-federated.yaml"), rounds=5, fraction=1.0)
    parser.add_argument("--shares", type=int, default=3)
    parser.add_argument("--threshold", type=int, default=2)
    parser.add_argument("--clipping-range", type=float, default=SecureAggregationSpec().clipping_range,
                        help="scaled update values are clipped to +-this (see train/federated/secure.py)")
    parser.add_argument("--deployment", action="store_true", help="run on a local SuperLink and SuperNodes, not in the simulation")
    args = parser.parse_args()

    spec = fleet_spec(args)
    settings = replace(spec.federated, personalization=PersonalizationSpec())
    secure = SecureAggregationSpec(shares=args.shares, threshold=args.threshold, clipping_range=args.clipping_range)
    out = spec.layout(args.root).stage("bench")
    path = "-deployment" if args.deployment else ""
    rows = {}
    for name, variant in (("plain", settings), ("secagg", replace(settings, secure_aggregation=secure))):
        rows[name] = in_own_process(run, replace(spec, federated=variant), out / f"secagg{path}-{name}", args.root, args.deployment,
                                    ray_temp=args.root / ".ray")
        print(name, {k: v for k, v in rows[name].items() if k != "weights"}, flush=True)
    plain, secagg = rows["plain"], rows["secagg"]
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(plain.pop("weights"), secagg.pop("weights")))
    overhead = secagg["wall_seconds"] / plain["wall_seconds"] - 1
    print(f"\n{spec.name}{' on SuperNodes' if args.deployment else ''}: {args.rounds} rounds, {settings.clients} clients, {settings.fraction:.0%} per round, "
          f"SecAgg+ {secure.shares} shares / threshold {secure.threshold}")
    print("| aggregation | wall time (s) | first round (s) | later rounds, mean (s) | int8 test accuracy (TFLM) | mean personalization gain |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['wall_seconds']} | {row['round_seconds'][0]} | {np.mean(row['round_seconds'][1:]):.2f} "
              f"| {row['int8_accuracy']:.4f} | {100 * row['mean_personalization_gain']:+.1f} points |")
    steady = np.mean(secagg["round_seconds"][1:]) / np.mean(plain["round_seconds"][1:]) - 1
    print(f"SecAgg+ wall-time overhead {100 * overhead:+.0f} % in all, {100 * steady:+.0f} % per round after the first "
          f"(the first includes starting the client processes); final weights differ from plain by at most {difference:.3g} "
          "(stochastic rounding each round, compounded by training)")
    write_json_atomic(out / f"secagg{path}.json", {
        "spec": spec.name, "rounds": args.rounds, "deployment": args.deployment, "shares": secure.shares, "threshold": secure.threshold,
        "rows": rows, "overhead": overhead, "round_overhead": steady, "max_weight_difference": difference,
    })


if __name__ == "__main__":
    main()
