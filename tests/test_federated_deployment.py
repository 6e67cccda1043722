"""Deployment mode (train/federated/deployment.py): a SuperLink and SuperNodes on 127.0.0.1 run the
same apps as the simulation, and every process they started is gone afterwards."""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mcuforge.config import parse_dataclass
from mcuforge.spec import Spec
from mcuforge.train.federated.deployment import ServerTLS, _descendants, free_port, write_app

SPEC = {
    "name": "fedlink",
    "data": {"dataset": "digits", "seed": 0},
    "model": {"arch": "tiny_cnn", "width": 0.25},
    "train": {"batch_size": 32, "learning_rate": 0.01, "seed": 0},
    "federated": {"rounds": 1, "clients": 2, "alpha": 100.0},
}


def write_tls(directory: Path):
    """A self-signed CA and a server certificate it signed for 127.0.0.1, as PEM files: (ca, certificate, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, issuer, public_key, signing_key, extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcuforge test CA")])
    ca = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, [(x509.BasicConstraints(ca=True, path_length=None), True)])
    server = certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, server_key.public_key(), ca_key,
        [(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), False),
         (x509.BasicConstraints(ca=False, path_length=None), True)],
    )
    paths = directory / "ca.crt", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


SECURE_CLIPPING = 8.0


def clientapp_tasks(logs: Path, node: int) -> tuple[list[str], set[int]]:
    """The message types SuperNode `node` logged receiving, in order, checked against the tasks its ClientApp
    process logged running (same count and types); and the ids of the processes that ran them."""
    import re

    received = re.findall(r"Receiving: (\w+) message", (logs / f"supernode-{node}.log").read_text())
    ran = re.findall(r"clientapp process (\d+): task \d+ of run \d+ \((\w+)\)", (logs / f"clientapp-{node}.log").read_text())
    assert [kind for _, kind in ran] == received
    return received, {int(pid) for pid, _ in ran}


@pytest.mark.slow
def test_one_tls_fleet_runs_plain_fedavg_and_secagg_within_its_bound_and_leaves_no_process():
    """A SuperLink over TLS (our own CA) and three SuperNodes that trust only that CA, two runs submitted to it.

    The plain run's model is the clients' FedAvg to float32 rounding. flwr 1.42 exits 0 even when every
    SecAgg+ fit fails, so the SecAgg+ round is judged from the model: the same FedAvg within SecAgg+'s
    quantization bound, and not bit-equal to it (it was quantized). Both runs share the fleet's processes
    and the oracle's fits (the specs differ only in the aggregation).
    """
    from federated_oracle import client_fits, fedavg

    from mcuforge.train.federated.deployment import Deployment, deploy, flower_environment, local_fleet
    from mcuforge.train.federated.partition import client_partitions
    from mcuforge.train.federated.secure import aggregation_error_bound
    from mcuforge.train.trainer import build_model, load_dataset

    plain = parse_dataclass(Spec, {**SPEC, "federated": {**SPEC["federated"], "clients": 3}})
    secure = parse_dataclass(Spec, {**SPEC, "name": "fedtls", "federated": {
        **SPEC["federated"], "clients": 3, "secure_aggregation": {"shares": 3, "threshold": 2, "clipping_range": SECURE_CLIPPING}}})
    scratch = Path(tempfile.mkdtemp(prefix="mf", dir="/tmp"))
    root = scratch / "build"
    try:
        ca, certificate, key = write_tls(scratch)
        env = flower_environment(root)
        home = Path(env["FLWR_HOME"])
        home.mkdir(parents=True)
        with local_fleet(home, root / "fleet-logs", 3, env, ServerTLS(ca, certificate, key)) as address:
            where = Deployment(superlink=address, root_certificates=ca, timeout=900)
            runs = {spec.name: deploy(spec, root, where=where) for spec in (plain, secure)}
        assert _descendants(os.getpid()) == []  # SuperLink, SuperNodes, their ClientApp processes, the ServerApps
        tasks = [clientapp_tasks(root / "fleet-logs", node) for node in range(3)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for model, _, strategy, clients, _ in runs.values():
        (record,) = strategy.records
        assert clients == 3 and record.aggregated and record.clients == [0, 1, 2] and record.failed == 0
    # Each node's messages, as its SuperNode logged receiving them: per run the partition question, then the plain
    # fit, or SecAgg+'s four stages (setup, key shares, masked vectors, unmasking); all run in one process per node.
    for received, processes in tasks:
        assert received == ["get_properties", "train", "get_properties", "train", "train", "train", "train"]
        assert len(processes) == 1

    dataset = load_dataset(plain)
    start = build_model(plain, dataset)
    answers = client_fits(plain, 3, 1, start)
    expected = fedavg(answers, start)

    def error(name):
        return max(float(np.max(np.abs(d - e))) for d, e in zip(runs[name][0].get_weights(), expected))

    peak = max(float(np.max(np.abs(w))) for w in expected)
    # The server averages in float32 (a difference, a weighted sum of three, an addition): a few float32 roundings.
    tolerance = 6 * float(np.finfo(np.float32).eps) * peak
    assert error(plain.name) <= tolerance
    initial = build_model(plain, dataset).get_weights()
    assert max(float(np.max(np.abs(d - i))) for d, i in zip(runs[plain.name][0].get_weights(), initial)) > 100 * tolerance  # it trained

    fitted_peak = max(float(np.max(np.abs(w))) for weights, _ in answers for w in weights)
    assert fitted_peak <= SECURE_CLIPPING
    max_weight = max(len(p) for p in client_partitions(secure, dataset))
    bound = aggregation_error_bound([count for _, count in answers], max_weight, SECURE_CLIPPING, fitted_peak)
    assert 0 < error(secure.name) <= bound, (error(secure.name), bound)


def test_a_local_tls_superlink_needs_its_ca_certificate_and_key(tmp_path):
    from mcuforge.errors import MCUForgeError
    from mcuforge.train.federated.deployment import Deployment

    assert Deployment().local_tls() is None
    assert Deployment(superlink="server.example:9093", root_certificates=tmp_path / "ca.crt").local_tls() is None
    with pytest.raises(MCUForgeError, match=r"needs its CA \(--root-certificates\), certificate .* pass all three"):
        Deployment(root_certificates=tmp_path / "ca.crt").local_tls()


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
        (["--deployment", "--root-certificates", "fedlink.yaml"], "a local SuperLink over TLS needs its CA (--root-certificates), certificate"),
        (["--ssl-certfile", "fedlink.yaml"], "--superlink and --root-certificates apply to --deployment (so do --ssl-certfile"),
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


@pytest.mark.parametrize(
    "args, names",
    [
        ([], "one of the arguments --insecure --root-certificates is required"),
        (["--root-certificates", "missing-ca.crt"], "--root-certificates: no such file missing-ca.crt"),
    ],
)
def test_the_clientapp_process_refuses_an_unsafe_or_missing_connection_in_one_error_line(tmp_path, args, names, capsys, monkeypatch):
    from mcuforge.train.federated.clientapp_process import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {names}"), lines
