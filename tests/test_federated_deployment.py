"""Deployment mode (train/federated/deployment.py): a SuperLink and two SuperNodes on 127.0.0.1 run the
same apps as the simulation, and every process they started is gone afterwards."""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mcuforge.config import parse_dataclass
from mcuforge.spec import Spec
from mcuforge.train.federated.deployment import _descendants, free_port, write_app

SPEC = {
    "name": "fedlink",
    "data": {"dataset": "digits", "seed": 0},
    "model": {"arch": "tiny_cnn", "width": 0.25},
    "train": {"batch_size": 32, "learning_rate": 0.01, "seed": 0},
    "federated": {"rounds": 1, "clients": 2, "alpha": 100.0},
}


@pytest.mark.slow
def test_two_supernodes_on_loopback_aggregate_the_fedavg_model_and_leave_no_process():
    from federated_oracle import client_fits, fedavg

    from mcuforge.train.federated.deployment import Deployment, deploy
    from mcuforge.train.trainer import build_model, load_dataset

    spec = parse_dataclass(Spec, SPEC)
    root = Path(tempfile.mkdtemp(prefix="mf", dir="/tmp")) / "build"
    try:
        model, _, strategy, clients, _ = deploy(spec, root, where=Deployment(timeout=420))
        assert _descendants(os.getpid()) == []  # SuperLink, SuperNodes, their SuperExecs and app processes
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    assert clients == 2
    (record,) = strategy.records
    assert record.aggregated and record.clients == [0, 1] and record.failed == 0

    answers = client_fits(spec, 2, 1, build_model(spec, load_dataset(spec)).get_weights())
    expected = fedavg(answers)
    deployed = model.get_weights()
    peak = max(float(np.max(np.abs(w))) for w in expected)
    # The server averages in float32 (a difference, a weighted sum of two, an addition): a few float32 roundings.
    tolerance = 4 * float(np.finfo(np.float32).eps) * peak
    assert max(float(np.max(np.abs(d - e))) for d, e in zip(deployed, expected)) <= tolerance
    initial = build_model(spec, load_dataset(spec)).get_weights()
    assert max(float(np.max(np.abs(d - i))) for d, i in zip(deployed, initial)) > 100 * tolerance  # it trained


def test_free_ports_are_bindable_and_the_app_names_the_deployed_apps(tmp_path):
    import socket
    import tomllib

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    config = tomllib.loads((write_app(tmp_path) / "pyproject.toml").read_text())
    components = config["tool"]["flwr"]["app"]["components"]
    module = __import__("mcuforge.train.federated.deployment", fromlist=["server"])
    assert components == {"serverapp": f"{module.__name__}:server", "clientapp": f"{module.__name__}:client"}
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    assert isinstance(module.server, ServerApp) and isinstance(module.client, ClientApp)


@pytest.mark.parametrize(
    "args, names",
    [
        (["--superlink", "127.0.0.1:9093"], "--superlink and --root-certificates apply to --deployment"),
        (["--deployment", "--root-certificates", "missing-ca.crt"], "--root-certificates: no file missing-ca.crt"),
    ],
)
def test_deployment_options_without_their_mode_or_file_are_one_error_line(tmp_path, args, names):
    import subprocess
    import sys

    import yaml

    spec = tmp_path / "fedlink.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "mcuforge"), "federate", str(spec), *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert ran.returncode == 2
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {names}"), ran.stderr
    assert not (tmp_path / "build").exists()  # refused before anything ran
