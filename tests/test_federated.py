"""`mcuforge federate` end to end on a tiny digits fleet (one Flower simulation shared by the tests):
dropouts that kill client processes, int8 updates and their uploaded bytes, the written model."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcuforge.results import TrainResult
from mcuforge.train.federated.faults import DROP, fate

REPO = Path(__file__).resolve().parent.parent
CLIENTS, ROUNDS, DROPOUT, SEED = 4, 2, 0.25, 0
SPEC = {
    "name": "fedtiny",
    "data": {"dataset": "digits", "seed": 0},
    "model": {"arch": "tiny_cnn", "width": 0.5},
    "train": {"batch_size": 32, "learning_rate": 0.003, "seed": SEED},
    "deploy": {"representative_samples": 100},
    "compress": {"steps": []},
    "federated": {
        "rounds": ROUNDS, "clients": CLIENTS, "alpha": 0.5, "strategy": "fedprox",
        "dropout": DROPOUT, "crash": True, "compression": "int8", "min_clients": 1,
    },
}


@pytest.fixture(scope="module")
def federated_run():
    # Ray's socket paths live under the build root and must stay short: not under pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="mf", dir="/tmp")) / "build"
    root.mkdir()
    spec = root / "fedtiny.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "mcuforge"), "federate", str(spec), "--root", str(root)],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )
    yield ran, root / "fedtiny" / "federate"
    shutil.rmtree(root.parent, ignore_errors=True)


def dropped(server_round):
    return {c for c in range(CLIENTS) if fate(SEED, server_round, c, DROPOUT, 0.0) == DROP}


@pytest.mark.slow
def test_rounds_aggregate_the_clients_that_answered_though_dropouts_kill_their_processes(federated_run):
    ran, out = federated_run
    assert ran.returncode == 0, ran.stderr[-3000:]
    rounds = json.loads((out / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == list(range(1, ROUNDS + 1))
    assert set().union(*(dropped(r) for r in range(1, ROUNDS + 1))), "the seed must drop someone for this test to mean anything"
    for record in rounds:
        # Every client was sampled; the crashed ones (their processes ended) failed, every other one answered,
        # also in the rounds after a process died.
        assert record["sampled"] == CLIENTS
        assert record["sampled_clients"] == list(range(CLIENTS))  # each node told the server its partition id
        assert record["clients"] == sorted(set(range(CLIENTS)) - dropped(record["round"]))
        assert record["failed"] == len(dropped(record["round"]))
        assert record["aggregated"]


@pytest.mark.slow
def test_int8_uploads_are_a_quarter_of_the_float_weights(federated_run):
    ran, out = federated_run
    assert ran.returncode == 0, ran.stderr[-3000:]
    from mcuforge.train.trainer import load_model

    weights = load_model(out / "model.h5").get_weights()
    values, tensors = sum(w.size for w in weights), len(weights)
    for record in json.loads((out / "rounds.json").read_text()):
        assert len(record["uploaded_bytes"]) == len(record["clients"])
        for sent in record["uploaded_bytes"]:
            # 1 byte a value, an encoding byte and a float32 scale per tensor (tiny_cnn has no batch-norm
            # statistics), plus the record's framing; float32 would be 4 bytes a value.
            assert values + 5 * tensors <= sent <= values + 5 * tensors + 100 * tensors + 300


@pytest.mark.slow
def test_the_written_model_is_the_aggregated_one_and_survives_int8(federated_run):
    ran, out = federated_run
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = TrainResult.load(out)
    summary = result.metrics["federated"]
    rounds = json.loads((out / "rounds.json").read_text())
    # The saved model, scored afresh, gives the server's evaluation after the last round.
    assert result.metrics["test"]["accuracy"] == pytest.approx(rounds[-1]["test_accuracy"], abs=1e-9)
    assert rounds[-1]["test_accuracy"] > 0.2  # 10 classes: chance is 0.1
    assert abs(summary["int8_test_accuracy"] - rounds[-1]["test_accuracy"]) <= 0.05
    assert summary["clients"] == CLIENTS
    assert summary["uploaded_bytes"] == sum(sum(r["uploaded_bytes"]) for r in rounds)
    assert (out / "federated.png").stat().st_size > 1000
    printed = json.loads(ran.stdout[ran.stdout.index("{\n") : ran.stdout.rindex("}") + 1])  # after the round lines
    assert printed["int8_test_accuracy_tflm"] == summary["int8_test_accuracy"]
