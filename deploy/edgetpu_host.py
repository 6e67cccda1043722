"""Coral Edge TPU on this host: the libedgetpu delegate (a USB Accelerator), else the CPU with a notice.

Models run in deploy/edgetpu_runner.py, a subprocess with a timeout, so a hung
accelerator cannot hang mcuforge; deploy/edgetpu_devboard.py runs the same
script on a Dev Board.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mcuforge.deploy.tflite_model import read_tflite
from mcuforge.errors import MCUForgeError

LIBEDGETPU_HINT = "install libedgetpu1-std from the same Coral apt repository (coral-edgetpu-stable)"
RUNNER = Path(__file__).with_name("edgetpu_runner.py")
RUN_TIMEOUT_S = 120
# USB ids of the Coral USB Accelerator: before its firmware is loaded, and after.
USB_ACCELERATOR_IDS = (("1a6e", "089a"), ("18d1", "9302"))


@dataclass(frozen=True)
class RunResult:
    """What the runner printed: `device` is "edgetpu" when the libedgetpu delegate was loaded, else "cpu"."""

    device: str
    notice: str | None
    outputs: list
    output_dtypes: list[str]
    latency_ms: float


def runner_args(model: Path, cpu_model: Path | None, input_npy: Path | None, require_edgetpu: bool) -> list[str]:
    args = [str(model)]
    if cpu_model is not None:
        args += ["--cpu-model", str(cpu_model)]
    if input_npy is not None:
        args += ["--input", str(input_npy)]
    if require_edgetpu:
        args.append("--require-edgetpu")
    return args


def runner_result(run: subprocess.CompletedProcess, where: str) -> RunResult:
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        # the runner's own message; LiteRT may print "Exception ignored" noise after it
        reported = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        reason = (reported or lines or [f"exit status {run.returncode}"])[-1]
        raise MCUForgeError(f"the Edge TPU runner failed on {where}: {reason}")
    try:
        return RunResult(**json.loads(run.stdout.strip().splitlines()[-1]))
    except (ValueError, TypeError, IndexError):
        raise MCUForgeError(f"the Edge TPU runner on {where} printed no result: {run.stdout.strip()[-200:]!r}") from None


def runner_inputs(model: Path | str, cpu_model: Path | str | None, input_npy: Path | str | None) -> list[Path | None]:
    """The runner's files as paths, checked here so a bad one is named as every command names it: present, models readable."""
    paths = [Path(p) if p is not None else None for p in (model, cpu_model, input_npy)]
    for p in paths:
        if p is not None and not p.is_file():
            raise MCUForgeError(f"file not found: {p}")
    for p in paths[:2]:
        if p is not None:
            read_tflite(p)
    return paths


def run_local(model: Path | str, cpu_model: Path | str | None = None, input_npy: Path | str | None = None,
              require_edgetpu: bool = False) -> RunResult:  # fmt: skip
    """Run on this host: the Edge TPU when libedgetpu loads, else the CPU with a notice (in a subprocess with a timeout)."""
    paths = runner_inputs(model, cpu_model, input_npy)
    command = [sys.executable, str(RUNNER), *runner_args(*paths, require_edgetpu)]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(f"the Edge TPU runner did not finish within {RUN_TIMEOUT_S} s: unplug and replug the accelerator") from None
    return runner_result(run, "this host")


def usb_accelerators(sysfs: Path | str = "/sys/bus/usb/devices") -> list[str]:
    """The sysfs names of attached Coral USB Accelerators."""
    found = []
    for device in sorted(Path(sysfs).glob("*")):
        try:
            ids = ((device / "idVendor").read_text().strip(), (device / "idProduct").read_text().strip())
        except OSError:
            continue
        if ids in USB_ACCELERATOR_IDS:
            found.append(device.name)
    return found


def libedgetpu_path() -> str | None:
    return ctypes.util.find_library("edgetpu")


def check_usb_accelerator(sysfs: Path | str = "/sys/bus/usb/devices") -> None:
    """Fail fast, naming what is missing, unless libedgetpu and a USB Accelerator are both present."""
    missing = []
    if libedgetpu_path() is None:
        missing.append(f"libedgetpu is not installed: {LIBEDGETPU_HINT}")
    if not usb_accelerators(sysfs):
        ids = " or ".join(f"{v}:{p}" for v, p in USB_ACCELERATOR_IDS)
        missing.append(f"no Coral USB Accelerator is attached (no USB device {ids}): plug it into a USB 3 port")
    if missing:
        raise MCUForgeError("cannot run on the coral-usb target: " + "; ".join(missing))


def run_usb(model: Path | str, input_npy: Path | str | None = None, sysfs: Path | str = "/sys/bus/usb/devices") -> RunResult:
    """Run a compiled model on an attached USB Accelerator (no CPU fallback: the target is the TPU)."""
    check_usb_accelerator(sysfs)
    ctypes.CDLL(libedgetpu_path())  # a broken install fails here with the loader's message
    return run_local(model, None, input_npy, require_edgetpu=True)
