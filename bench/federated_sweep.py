"""Choose federated settings on the validation split: one federated run (float32 updates) per configuration.

Runs on demand (each configuration is a Flower simulation: minutes on two cores):

    .venv/bin/python bench/federated_sweep.py --spec specs/digits-federated.yaml --rounds 20 --fraction 0.5 \
        --local-epochs 2 --try "" --try "server_momentum=0.9" \
        --try "server_optimizer=yogi server_learning_rate=0.01 server_momentum=0.9"

The fleet is federated_keywords.py's (same options, same base: FedAvg, no
faults, float32 updates, then --set); each --try adds its space-separated
KEY=VALUE federated settings, or train.KEY=VALUE for the clients' local
training (train.learning_rate=0.001), over the base ("" is the base). Printed per configuration: the
float validation accuracy and cross-entropy (what to choose by: the loss still
ranks models whose accuracy ties on a small split), the int8 test accuracy in TFLM
(what to report, never to choose by), wall time, and whether the clients
sampled in the rounds both ran are the ones of the first configuration (same
seed, so they must be). --seed changes train.seed (the data split and test set stay): run the
sweep with a few seeds when one seed's validation split cannot tell the
configurations apart. Each configuration runs in its own process (a process that
dies is reported with the reason; the others still run). Writes
<root>/<name>/bench/sweep-seed<seed>.json.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from federated_isolation import RowFailed, in_own_process
from federated_keywords import federated_row, federated_settings, fleet_arguments, fleet_spec
from mcuforge.artifacts import write_json_atomic
from mcuforge.config import to_dict

TRAIN = "train."  # a --try key with this prefix sets the spec's train section (the clients' local training), e.g. train.learning_rate


def validation_loss(spec, directory: Path) -> float:
    """Mean cross-entropy of the run's float model on the validation split."""
    from mcuforge.layout import KERAS_MODEL_FILE
    from mcuforge.train.trainer import load_dataset, load_model

    dataset = load_dataset(spec)
    predictions = load_model(directory / KERAS_MODEL_FILE).predict(dataset.x_val, batch_size=256, verbose=0)
    return float(-np.mean(np.log(np.clip(predictions[np.arange(len(predictions)), dataset.y_val], 1e-7, 1.0))))


def sweep_row(spec, directory: Path, root: Path) -> dict:
    """One configuration's federated row with its validation loss (run in its own process)."""
    return {**federated_row(spec, directory, root), "val_loss": validation_loss(spec, directory)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fleet_arguments(parser)
    parser.add_argument("--seed", type=int, help="train.seed (client sampling, initial weights, local training) instead of the spec's")
    parser.add_argument("--try", dest="configurations", action="append", required=True, metavar="'KEY=VALUE ...'",
                        help="one configuration: federated settings over the base")
    args = parser.parse_args()

    spec = fleet_spec(args)
    if args.seed is not None:
        spec = replace(spec, train=replace(spec.train, seed=args.seed))
    out = spec.layout(args.root).stage("bench") / f"sweep-seed{spec.train.seed}"
    rows, failed = [], []
    for number, configuration in enumerate(args.configurations):
        items = shlex.split(configuration)
        change = federated_settings([item for item in items if not item.startswith(TRAIN)])
        local = {key[len(TRAIN):]: yaml.safe_load(value) for key, value in (i.split("=", 1) for i in items if i.startswith(TRAIN))}
        variant = replace(spec, train=replace(spec.train, **local), federated=replace(spec.federated, **change))
        change.update({TRAIN + key: value for key, value in local.items()})
        try:
            row = {"settings": change, **in_own_process(sweep_row, variant, out / f"run{number}", args.root, ray_temp=args.root / ".ray")}
        except RowFailed as failure:
            failed.append(configuration or "base")
            print(f"error: {configuration or 'base'}: {failure}", file=sys.stderr, flush=True)
            continue
        rows.append(row)
        same = all(a == b for a, b in zip(row["sampled_clients"], rows[0]["sampled_clients"]))  # the rounds both ran
        print(f"{configuration or 'base'}: val {row['val_accuracy']:.4f} (loss {row['val_loss']:.4f}), int8 test {row['int8_accuracy']:.4f}, "
              f"float test {row['float_accuracy']:.4f}, {row['wall_seconds']} s, sampled as the first: {same}", flush=True)
    write_json_atomic(out.parent / f"sweep-seed{spec.train.seed}.json", {"base": to_dict(spec.federated), "seed": spec.train.seed, "rows": rows})
    if failed:
        raise SystemExit(f"error: {len(failed)} configuration(s) ended without a result ({', '.join(failed)}): see the error lines above")


if __name__ == "__main__":
    main()
