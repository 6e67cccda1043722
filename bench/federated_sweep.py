"""Choose federated settings on the validation split: one federated run (float32 updates) per configuration.

Runs on demand (each configuration is a Flower simulation: minutes on two cores):

    .venv/bin/python bench/federated_sweep.py --spec specs/digits-federated.yaml --rounds 20 --fraction 0.5 \
        --local-epochs 2 --try "" --try "server_momentum=0.9" \
        --try "server_optimizer=yogi server_learning_rate=0.01 server_momentum=0.9"

The fleet is federated_keywords.py's (same options, same base: FedAvg, no
faults, float32 updates, then --set); each --try adds its space-separated
KEY=VALUE federated settings ("" is the base). Printed per configuration: the
float validation accuracy (what to choose by), the int8 test accuracy in TFLM
(what to report, never to choose by), wall time, and whether the clients
sampled per round are the ones of the first configuration (same seed, so they
must be). Writes <root>/<name>/bench/sweep.json.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from federated_keywords import federated_row, federated_settings, fleet_arguments, fleet_spec
from mcuforge.artifacts import write_json_atomic
from mcuforge.config import to_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fleet_arguments(parser)
    parser.add_argument("--try", dest="configurations", action="append", required=True, metavar="'KEY=VALUE ...'",
                        help="one configuration: federated settings over the base")
    args = parser.parse_args()

    spec = fleet_spec(args)
    out = spec.layout(args.root).stage("bench") / "sweep"
    rows = []
    for number, configuration in enumerate(args.configurations):
        change = federated_settings(shlex.split(configuration))
        variant = replace(spec, federated=replace(spec.federated, **change))
        row = {"settings": change, **federated_row(variant, out / f"run{number}", args.root)}
        rows.append(row)
        same = row["sampled_clients"] == rows[0]["sampled_clients"]
        print(f"{configuration or 'base'}: val {row['val_accuracy']:.4f}, int8 test {row['int8_accuracy']:.4f}, "
              f"float test {row['float_accuracy']:.4f}, {row['wall_seconds']} s, sampled as the first: {same}", flush=True)
    write_json_atomic(out.parent / "sweep.json", {"base": to_dict(spec.federated), "rows": rows})


if __name__ == "__main__":
    main()
