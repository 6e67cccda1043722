"""Coral Dev Board: copy the model(s), the input and the runner over ssh or mdt, run them there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mcuforge.deploy.edgetpu_host import RUN_TIMEOUT_S, RUNNER, RunResult, runner_args, runner_inputs, runner_result
from mcuforge.errors import MCUForgeError

REMOTE_DIR = "/tmp/mcuforge-edgetpu"


def _require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        hint = "pip install mendel-development-tool" if "mdt" in missing else "apt-get install openssh-client"
        raise MCUForgeError(f"{', '.join(missing)} not found on PATH: {hint}")


def _remote(command: list[str], what: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
    """Run one transfer step with a timeout; `check` False leaves the exit status to the caller (the runner's own errors)."""
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(f"{what} timed out after {timeout:g} s: check that the board is powered and on the network") from None
    if check and run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        raise MCUForgeError(
            f"{what} failed: {lines[-1] if lines else f'exit status {run.returncode}'}. "
            "Check that `ssh HOST` logs in without a password (mdt pushkey, or ssh-copy-id)"
        )
    return run


def run_devboard(model: Path | str, host: str | None, cpu_model: Path | str | None = None, input_npy: Path | str | None = None,
                 via: str = "ssh", port: int = 22, connect_timeout: int = 10, remote_dir: str = REMOTE_DIR) -> RunResult:  # fmt: skip
    """Copy the model(s), the input and the runner to a Coral Dev Board and run them there.

    `via` "ssh" needs `host` (user@address); "mdt" uses the device mdt is set to
    (`mdt set preferred-device NAME`). Every step has a timeout, so an absent board fails fast.
    """
    files = [p for p in runner_inputs(model, cpu_model, input_npy) if p is not None]
    remote = {p: f"{remote_dir}/{p.name}" for p in [*files, RUNNER]}
    run_args = runner_args(*(Path(remote[Path(p)]) if p is not None else None for p in (model, cpu_model, input_npy)), False)
    runner_command = ["python3", remote[RUNNER], *run_args]
    step_timeout = connect_timeout + 60
    if via == "ssh":
        if not host:
            raise MCUForgeError("--host is required for the coral-devboard target over ssh: pass --host mendel@ADDRESS")
        _require_tools("ssh", "scp")
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}"]
        _remote(["ssh", *options, "-p", str(port), host, "mkdir", "-p", remote_dir], f"ssh to {host}", step_timeout)
        _remote(["scp", *options, "-P", str(port), *map(str, remote), f"{host}:{remote_dir}/"], f"copying to {host}", step_timeout)
        run = _remote(["ssh", *options, "-p", str(port), host, *runner_command], f"running on {host}", RUN_TIMEOUT_S + connect_timeout, check=False)
    elif via == "mdt":
        if host:
            raise MCUForgeError("mdt runs on its preferred device: set it with `mdt set preferred-device NAME` and omit --host")
        _require_tools("mdt")
        _remote(["mdt", "exec", "mkdir", "-p", remote_dir], "mdt exec", step_timeout)
        for local, target in remote.items():
            _remote(["mdt", "push", str(local), target], f"mdt push {local.name}", step_timeout)
        run = _remote(["mdt", "exec", *runner_command], "running over mdt", RUN_TIMEOUT_S + connect_timeout, check=False)
    else:
        raise MCUForgeError(f"unknown transfer {via!r}: expected ssh or mdt")
    return runner_result(run, host or "the mdt device")
