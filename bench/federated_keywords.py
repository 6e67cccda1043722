"""Federated benchmark: int8 accuracy on the device against central training, uploaded bytes, dropouts, wall time.

Runs on demand (each configuration is a Flower simulation: minutes to an hour on two cores):

    .venv/bin/python bench/federated_keywords.py [--spec specs/keywords.yaml] [--rounds 40]
        [--local-epochs 2] [--fraction 0.1] [--data-option speakers=80 ...] [--root build]
        [--set server_optimizer=yogi --set server_learning_rate=0.01 ...] [--seeds 0 1 2]

Keywords: one client per training speaker. Other classifier specs (digits) use
the Dirichlet split of their `federated:` section (or its defaults).
Rows: central training for rounds x fraction x local epochs epochs (as many
passes over each sample as the federated runs make on average); federated
FedAvg (or the server optimizer and strategy given with --set) with plain float32 updates; int8 updates;
4-bit stochastically rounded updates (one packed tensor); top-k (10 %) int8 updates with
error feedback; plain updates with 30 % of the sampled clients dropping out.
Each row runs in its own process (federated_isolation): a row whose process
dies is reported with the reason, and the others still run. With --seeds each
row runs once per train.seed (initial weights, client sampling, local training;
the data split and test set stay) and reports the mean and the spread; the
central row runs deterministic TensorFlow like the clients (reproducible.py).
Accuracy is the int8 model through TFLM on the test split. The issue's targets
are checked on the means and every miss printed with its gap. Writes
<root>/<name>/bench/federated.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from federated_isolation import RowFailed, in_own_process
from mcuforge.artifacts import write_json_atomic
from mcuforge.config import to_dict
from mcuforge.spec import FederatedSpec, Spec, load_spec

VARIANTS = {
    "float32 updates": {},
    "int8 updates": {"compression": "int8"},
    "4-bit updates": {"compression": "int4"},
    "top-k 10 % int8 updates": {"compression": "topk", "topk_fraction": 0.1},
    "30 % dropout": {"dropout": 0.3},
}
COMPRESSED = ("int8 updates", "4-bit updates", "top-k 10 % int8 updates")


def federated_settings(items: list[str]) -> dict:
    """KEY=VALUE federated settings (YAML values) as a mapping, checked against the spec's section."""
    from dataclasses import fields

    known = {f.name for f in fields(FederatedSpec)}
    settings = {}
    for item in items:
        key, value = item.split("=", 1)
        if key not in known:
            raise SystemExit(f"error: --set {key}: not a federated setting; expected one of {', '.join(sorted(known))}")
        settings[key] = yaml.safe_load(value)
    return settings


def central_row(spec: Spec, epochs: int, directory: Path) -> dict:
    from mcuforge.pipeline import int8_test_accuracy
    from mcuforge.train.federated.reproducible import deterministic_tensorflow
    from mcuforge.train.trainer import train

    deterministic_tensorflow()  # as the simulation's clients: its seeds' spread is theirs, not the thread scheduler's

    central = replace(spec, train=replace(spec.train, epochs=epochs), federated=None)
    started = time.perf_counter()
    result = train(central, directory)
    return {
        "float_accuracy": result.metrics["test"]["accuracy"],
        "val_accuracy": result.metrics["val"]["accuracy"],
        "int8_accuracy": int8_test_accuracy(central, directory / result.model),
        "uploaded_bytes": None,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def federated_row(spec: Spec, directory: Path, root: Path) -> dict:
    from mcuforge.pipeline import int8_test_accuracy
    from mcuforge.train.federated.run import federate

    started = time.perf_counter()
    result = federate(spec, directory, int8_test_accuracy, root)
    fed = result.metrics["federated"]
    return {
        "float_accuracy": result.metrics["test"]["accuracy"],
        "val_accuracy": result.metrics["val"]["accuracy"],
        "int8_accuracy": fed["int8_test_accuracy"],
        "uploaded_bytes": fed["uploaded_bytes"],
        "uploads": sum(r["answered"] for r in fed["rounds"]),
        "clients": fed["clients"],
        "sampled_clients": [r["sampled_clients"] for r in fed["rounds"]],
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


MEASURES = ("int8_accuracy", "float_accuracy", "val_accuracy", "uploaded_bytes", "uploads", "wall_seconds")


def over_seeds(runs: dict[int, dict]) -> dict:
    """One row from its runs, one per seed: each measure's mean, int8 accuracy's spread, and the runs themselves.

    A row with a failed seed reports the failure (the other seeds' runs stay in the record)."""
    failed = {seed: run["error"] for seed, run in runs.items() if "error" in run}
    if failed:
        return {"error": "; ".join(f"seed {seed}: {error}" for seed, error in failed.items()), "seeds": runs}
    row = {key: None if runs[next(iter(runs))].get(key) is None else float(np.mean([run[key] for run in runs.values()]))
           for key in MEASURES}
    accuracies = [run["int8_accuracy"] for run in runs.values()]
    row["int8_accuracy_std"] = float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0
    row["int8_accuracy_range"] = [min(accuracies), max(accuracies)]
    row["seeds"] = runs
    return row


def targets(rows: dict[str, dict]) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for each target whose rows finished; accuracy points are percentage points of int8 test accuracy."""
    done = {name: row for name, row in rows.items() if "error" not in row}
    checks = []
    plain = done.get("float32 updates")
    if plain is None:
        return checks
    if "central" in done:
        gap = 100 * (done["central"]["int8_accuracy"] - plain["int8_accuracy"])
        checks.append(("federated within 2 points of central", gap <= 2, f"{gap:+.1f} points"))
    # Bytes per upload: the dropout run sends fewer uploads, the compressed ones smaller ones.
    per_upload = lambda row: row["uploaded_bytes"] / row["uploads"]  # noqa: E731
    for name in COMPRESSED:
        if name in done:
            ratio = per_upload(plain) / per_upload(done[name])
            loss = 100 * (plain["int8_accuracy"] - done[name]["int8_accuracy"])
            checks.append((f"{name}: >= 8x fewer bytes per upload for <= 1 point", ratio >= 8 and loss <= 1,
                           f"{ratio:.1f}x, {loss:+.1f} points"))
    if "30 % dropout" in done:
        loss = 100 * (plain["int8_accuracy"] - done["30 % dropout"]["int8_accuracy"])
        checks.append(("30 % dropout loses <= 1 point", loss <= 1, f"{loss:+.1f} points"))
    return checks


def fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options that define the benchmarked fleet (shared with federated_sweep.py)."""
    parser.add_argument("--spec", type=Path, default=Path("specs/keywords.yaml"))
    parser.add_argument("--root", type=Path, default=Path("build"))
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="override a data option (YAML value), e.g. speakers=80 for a reduced keywords run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a federated setting for every federated run (YAML value), e.g. server_optimizer=yogi")


def fleet_spec(args: argparse.Namespace) -> Spec:
    """The spec with the fleet's data options and federated settings: FedAvg, no faults, float32 updates, then --set."""
    spec = load_spec(args.spec)
    options = dict(spec.data.options)
    for item in args.data_option:
        key, value = item.split("=", 1)
        options[key] = yaml.safe_load(value)
    plain = replace(
        spec.federated or FederatedSpec(), rounds=args.rounds, local_epochs=args.local_epochs, fraction=args.fraction,
        min_clients=1, strategy="fedavg", dropout=0.0, stragglers=0.0, compression="none",
    )
    return replace(spec, data=replace(spec.data, options=options), federated=replace(plain, **federated_settings(args.set)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    fleet_arguments(parser)
    parser.add_argument("--only", action="append", choices=["central", *VARIANTS], metavar="ROW",
                        help="run only this row (repeatable; default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="run every row once per train.seed and report mean and spread (default: the spec's seed)")
    args = parser.parse_args()

    spec = fleet_spec(args)
    settings, options = spec.federated, spec.data.options
    out = spec.layout(args.root).stage("bench")
    central_epochs = max(1, round(args.rounds * args.fraction * args.local_epochs))
    print(f"{spec.name}: data options {options}; federated {to_dict(settings)}")
    print(f"{args.rounds} rounds, {args.fraction:.0%} of clients per round, {args.local_epochs} local epochs; central: {central_epochs} epochs")

    ray_temp = args.root / ".ray"
    seeds = args.seeds or [spec.train.seed]
    rows = {}
    for name in ["central", *VARIANTS]:
        if args.only and name not in args.only:
            continue
        runs = {}
        for seed in seeds:
            seeded = replace(spec, train=replace(spec.train, seed=seed))
            directory = out / (name.replace(" ", "_").replace("%", "pct") + ("" if args.seeds is None else f"-seed{seed}"))
            if name == "central":
                function, row_args = central_row, (seeded, central_epochs, directory)
            else:
                function, row_args = federated_row, (replace(seeded, federated=replace(settings, **VARIANTS[name])), directory, args.root)
            try:
                runs[seed] = in_own_process(function, *row_args, ray_temp=ray_temp)
                print(name, f"seed {seed}", runs[seed], flush=True)
            except RowFailed as failure:
                runs[seed] = {"error": str(failure)}
                print(f"error: row {name!r} seed {seed}: {failure}", file=sys.stderr, flush=True)
        rows[name] = over_seeds(runs)

    print(f"\nseeds {', '.join(map(str, seeds))}: means (int8: mean ± sample standard deviation, [lowest, highest])")
    print("| configuration | int8 test accuracy (TFLM) | float test accuracy | float val accuracy | uploaded bytes | wall time (s) |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        if "error" in row:
            print(f"| {name} | failed: {row['error'].splitlines()[0]} | | | | |")
            continue
        sent = "" if row["uploaded_bytes"] is None else f"{row['uploaded_bytes']:,.0f} ({row['uploads']:.0f} uploads, {row['uploaded_bytes'] / row['uploads']:,.0f} each)"
        low, high = row["int8_accuracy_range"]
        print(f"| {name} | {row['int8_accuracy']:.4f} ± {row['int8_accuracy_std']:.4f} [{low:.4f}, {high:.4f}] "
              f"| {row['float_accuracy']:.4f} | {row['val_accuracy']:.4f} | {sent} | {row['wall_seconds']:.1f} |")
    checks = targets(rows)
    for target, met, measured in checks:
        print(f"{'met ' if met else 'MISS'} {target}: {measured}")
    write_json_atomic(out / "federated.json", {
        "spec": spec.name, "data_options": options, "rounds": args.rounds, "fraction": args.fraction,
        "local_epochs": args.local_epochs, "central_epochs": central_epochs, "settings": to_dict(settings), "seeds": seeds, "rows": rows,
        "targets": [{"target": t, "met": m, "measured": v} for t, m, v in checks],
    })
    failed = [name for name, row in rows.items() if "error" in row]
    if failed:
        raise SystemExit(f"error: {len(failed)} row(s) ended without a result ({', '.join(failed)}): see the error lines above")


if __name__ == "__main__":
    main()
