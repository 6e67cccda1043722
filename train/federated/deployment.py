"""Deployment mode: the same ServerApp and ClientApp, run by Flower's SuperLink and SuperNodes.

In simulation one process (and Ray) plays every device. Here the SuperLink
(server side) and each SuperNode (one per device) are separate processes that
talk over the network; `flwr run` packs a Flower App (a pyproject.toml naming
the two apps, written under FLWR_HOME/runs/<name>/) into a FAB and submits it
with the spec as run config. The SuperLink then starts the ServerApp in a
subprocess, and each SuperNode hands its messages to one long-lived ClientApp
process beside it (clientapp_process: TensorFlow, data and model load once per
device, not once per message); the ServerApp writes the run's outputs. Locally all of it runs on 127.0.0.1, without TLS or with the
certificates given (Deployment.certificate, .key and their CA
root_certificates); the README gives the commands for a SuperLink and
SuperNodes on several machines with TLS.

Nothing is installed or downloaded at run time: the SuperLink runs with
`--disable-runtime-dependency-installation` (no `uv sync`), SuperNodes keep
their default (no installation), telemetry and update checks are off, and
FLWR_HOME (Flower's config, FABs, state) is under the build directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from flwr.client import ClientApp
from flwr.server import ServerApp

from mcuforge.artifacts import write_json_atomic
from mcuforge.config import parse_dataclass
from mcuforge.errors import MCUForgeError
from mcuforge.progress import Progress
from mcuforge.spec import Spec

CONNECTION = "mcuforge"  # the SuperLink connection name in FLWR_HOME/config.toml
LOOPBACK = "127.0.0.1"
_POLL_SECONDS = 0.5  # how often to look whether the SuperLink listens
WEIGHTS_FILE = "weights.npz"  # what the ServerApp leaves for the launcher: final global weights
ROUNDS_FILE = "rounds.json"  # and its strategy's round records


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def flower_environment(root: Path) -> dict[str, str]:
    """The environment of every Flower process: offline (run.offline_environment, no update check) and this
    interpreter's scripts first on PATH, since the SuperLink starts `flower-superexec` by name."""
    from mcuforge.train.federated.run import offline_environment

    scripts = str(Path(sys.executable).parent)
    return {
        **os.environ,
        **offline_environment(root),
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")]),
    }


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, children first (from /proc; Flower detaches its SuperExec)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found.append(int(child))
                found.extend(_descendants(int(child)))
    return found


def _stop(process: subprocess.Popen) -> None:
    """Terminate a process we started and every process it started, then reap it."""
    family = [process.pid, *_descendants(process.pid)]
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def _wait_listening(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    """Return once something accepts connections on loopback `port`; fail if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MCUForgeError(f"the SuperLink exited with status {process.returncode}: see {log}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(_POLL_SECONDS)
    raise MCUForgeError(f"the SuperLink did not listen on {LOOPBACK}:{port} within {timeout:.0f} s: see {log}")


@dataclass(frozen=True)
class ServerTLS:
    """The TLS files (PEM) of a local SuperLink: the CA, and the certificate it signed for LOOPBACK with its key."""

    ca: Path
    certificate: Path
    key: Path


@contextlib.contextmanager
def local_fleet(home: Path, logs: Path, supernodes: int, env: dict[str, str], tls: ServerTLS | None = None) -> Iterator[str]:
    """A SuperLink and `supernodes` SuperNodes on loopback (insecure, or over `tls`); yields the SuperLink's address.

    SuperNode i gets node config `partition-id=i`: it is client i of the spec's
    split. Each runs with `--isolation process` beside one long-lived ClientApp
    process (clientapp_process) that takes its messages over its Runtime API on
    loopback. Every process (and what it started) is stopped on exit, whatever happened.
    """
    if tls is None:
        link_security, node_security = ["--insecure"], ["--insecure"]
    else:
        link_security = ["--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.certificate), "--ssl-keyfile", str(tls.key)]
        node_security = ["--root-certificates", str(tls.ca)]
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"{LOOPBACK}:{port}"
    processes: list[subprocess.Popen] = []

    def start(name: str, args: list[str]) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home))

    try:
        start("superlink", [
            "flower-superlink", *link_security, "--host", LOOPBACK, "--port", str(port),
            "--disable-runtime-dependency-installation",
        ])
        _wait_listening(port, processes[0], logs / "superlink.log")
        for client in range(supernodes):
            runtime_api = f"{LOOPBACK}:{free_port()}"
            start(f"supernode-{client}", [
                "flower-supernode", *node_security, "--superlink", address, "--isolation", "process",
                "--host", LOOPBACK, "--port", runtime_api.rsplit(":", 1)[1],
                "--node-config", f"partition-id={client} num-partitions={supernodes}",
            ])
            start(f"clientapp-{client}", [
                sys.executable, "-m", "mcuforge.train.federated.clientapp_process", "--runtime-api-address", runtime_api, "--insecure",
            ])
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)


def write_connection(home: Path, address: str, insecure: bool = True, root_certificates: Path | None = None) -> None:
    """FLWR_HOME/config.toml naming the SuperLink `flwr run` submits to (connection CONNECTION)."""
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]", f'address = "{address}"']
    lines.append(f"insecure = {'true' if insecure else 'false'}")
    if root_certificates is not None:
        lines.append(f'root-certificates = "{root_certificates.resolve()}"')
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def write_app(app_dir: Path) -> Path:
    """The Flower App `flwr run` packs: a pyproject.toml naming this module's ServerApp and ClientApp.

    The apps' code is mcuforge itself (installed on every machine), so the FAB
    carries only this file and the spec travels as run config.
    """
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        'name = "mcuforge-federated"\n'
        'version = "1.0.0"\n'
        'description = "mcuforge federated training (SuperLink and SuperNodes)"\n'
        'license = "Apache-2.0"\n'
        "dependencies = []\n\n"
        "[tool.flwr.app]\n"
        'publisher = "mcuforge"\n\n'
        "[tool.flwr.app.components]\n"
        f'serverapp = "{__name__}:server"\n'
        f'clientapp = "{__name__}:client"\n\n'
        "[tool.flwr.app.config]\n"
        'spec = ""\n'
        'out = ""\n'
    )
    return app_dir


def _flwr(args: list[str], env: dict[str, str], timeout: float) -> dict:
    """Run the `flwr` CLI with JSON output; its parsed answer, or an error naming what it said."""
    done = subprocess.run(["flwr", *args, "--format", "json"], env=env, capture_output=True, text=True, timeout=timeout)
    text = done.stdout
    start = text.find("{")
    try:
        answer = json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        answer = {}
    if done.returncode != 0 or not answer.get("success", False):
        said = (done.stderr.strip() or text.strip()).splitlines()[-3:]
        raise MCUForgeError(f"`flwr {' '.join(args[:1])}` failed: {' | '.join(said)}")
    return answer


def submit(app_dir: Path, run_config: Path, env: dict[str, str], logs: Path, timeout: float) -> int:
    """Submit the app with a run config (a TOML file) to FLWR_HOME's SuperLink and wait until the run finishes; its run id.

    `flwr run --stream` follows the run's log until the run finishes (one CLI
    process, no polling); `flwr ls` then says whether it completed.
    """
    log_path = logs / "flwr-run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["flwr", "run", str(app_dir), CONNECTION, "--run-config", str(run_config), "--stream"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(f"the federated run did not finish within {timeout:.0f} s: see {logs}") from None
    finally:
        _stop(process)
    started = re.search(r"Successfully started run (\d+)", log_path.read_text(errors="replace"))
    if started is None:
        raise MCUForgeError(f"`flwr run` did not start the run: see {log_path}")
    run_id = started.group(1)
    (run,) = _flwr(["ls", CONNECTION, "--run-id", run_id], env, timeout=120)["runs"]
    if run["status"] != "finished:completed":
        raise MCUForgeError(f"federated run {run_id} ended {run['status']} {run.get('status-details') or ''}: see {logs}")
    return int(run_id)


def _spec_of(context) -> Spec:
    return parse_dataclass(Spec, json.loads(str(context.run_config["spec"])))


def _device(context):
    from mcuforge.train.federated.apps import started_device

    return started_device(str(context.run_config["spec"]), context)


def _secure_when_asked(msg, context, call_next):
    """The spec's client mods (SecAgg+ when it asks): the spec arrives with the run, after the app is loaded."""
    from flwr.client.mod.utils import make_ffn

    from mcuforge.train.federated.secure import client_mods

    return make_ffn(call_next, client_mods(_spec_of(context)))(msg, context)


client = ClientApp(client_fn=_device, mods=[_secure_when_asked])
server = ServerApp()


@server.main()
def _serve(grid, context) -> None:
    """The run's rounds (apps.serve), then its final weights and round records into run config `out`."""
    from mcuforge.train.federated.apps import serve
    from mcuforge.train.federated.run import fleet

    spec = _spec_of(context)
    _, _, strategy, _ = fleet(spec)
    serve(grid, context, spec, strategy)
    out = Path(str(context.run_config["out"]))
    np.savez(out / WEIGHTS_FILE, *strategy.global_weights)
    write_json_atomic(out / ROUNDS_FILE, [asdict(record) for record in strategy.records])


@dataclass(frozen=True)
class Deployment:
    """Where a deployment runs: a local SuperLink with one SuperNode per client (superlink None), or an
    existing SuperLink at `superlink` (host:port), over TLS when `root_certificates` names its CA.
    A local SuperLink runs TLS with `certificate` and `key` (signed by that CA for 127.0.0.1)."""

    superlink: str | None = None
    root_certificates: Path | None = None
    timeout: float = 3600.0  # seconds the run may take
    certificate: Path | None = None
    key: Path | None = None

    def local_tls(self) -> ServerTLS | None:
        """The local SuperLink's TLS files, or None for an insecure one; refuses an incomplete set."""
        given = (self.root_certificates, self.certificate, self.key)
        if self.superlink is not None and (self.certificate or self.key):
            raise MCUForgeError("--ssl-certfile and --ssl-keyfile are the local SuperLink's: drop them with --superlink")
        if self.superlink is not None or given == (None, None, None):
            return None
        if None in given:
            raise MCUForgeError(
                "a local SuperLink over TLS needs its CA (--root-certificates), certificate (--ssl-certfile) and key "
                "(--ssl-keyfile): pass all three, or none for an insecure one"
            )
        return ServerTLS(*given)


def deploy(spec: Spec, root: Path | str = "build", progress: Progress | None = None, where: Deployment = Deployment()):
    """Run the federated rounds through a SuperLink and SuperNodes (see Deployment); returns what run.simulate returns.

    On an existing SuperLink the ServerApp writes its outputs on the SuperLink's
    machine: run this there (or where `root` is shared with it).
    """
    from mcuforge.train.federated.apps import spec_json
    from mcuforge.train.federated.run import check_aggregated, fleet
    from mcuforge.train.federated.strategy import RoundRecord

    tls = where.local_tls()
    root = Path(root)
    env = flower_environment(root)
    home = Path(env["FLWR_HOME"])
    dataset, model, _, clients = fleet(spec)
    work = home / "runs" / spec.name
    shutil.rmtree(work, ignore_errors=True)
    out = work / "out"
    out.mkdir(parents=True)
    app_dir = write_app(work / "app")
    run_config = work / "run_config.toml"
    run_config.write_text(f"spec = {json.dumps(spec_json(spec))}\nout = {json.dumps(str(out.resolve()))}\n")
    progress = progress or Progress.quiet()
    if where.superlink is None:
        link = local_fleet(home, work / "logs", clients, env, tls)
        progress.line(
            f"deployment: a SuperLink and {clients} SuperNodes on {LOOPBACK} ({'TLS' if tls else 'insecure'}; logs in {work / 'logs'})"
        )
    else:
        link = contextlib.nullcontext(where.superlink)
        (work / "logs").mkdir(parents=True)
        progress.line(
            f"deployment: submitting to the SuperLink at {where.superlink} ({'TLS' if where.root_certificates else 'insecure'}); "
            f"it needs {clients} SuperNodes with partition-id 0..{clients - 1}, each with its ClientApp process "
            "(python -m mcuforge.train.federated.clientapp_process)"
        )
    started = time.perf_counter()
    with link as address:
        write_connection(home, address, insecure=where.root_certificates is None, root_certificates=where.root_certificates)
        run_id = submit(app_dir, run_config, env, work / "logs", where.timeout)
    seconds = time.perf_counter() - started
    records = [RoundRecord(**record) for record in json.loads((out / ROUNDS_FILE).read_text())]
    check_aggregated(records, spec.federated)
    with np.load(out / WEIGHTS_FILE) as saved:
        model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
    progress.line(f"deployment: run {run_id} finished, {sum(r.aggregated for r in records)}/{len(records)} rounds aggregated")
    return model, dataset, SimpleNamespace(records=records), clients, seconds
