"""Running an image on an emulated board: the qemu-system-arm command, and a run parsed by the console protocol."""

from __future__ import annotations

import subprocess

from mcuforge.errors import MCUForgeError
from mcuforge.firmware.console import RunResult, check_run, parse_run
from mcuforge.firmware.toolchain import FirmwareImage, tool

QEMU = "qemu-system-arm"
# QEMU runs with -icount: virtual time advances 2**shift ns per guest
# instruction, so SysTick "cycles" are deterministic and equal
# instructions * clock_hz / 1e9 (not silicon cycles; see bench/firmware_icount.py).
QEMU_ICOUNT_SHIFT = 0


def qemu_command(image: FirmwareImage, extra: list[str] = ()) -> list[str]:
    """The qemu-system-arm command line that runs `image` with semihosting and no display."""
    if not image.board.emulated:
        raise MCUForgeError(f"{image.board.name} is a real board, not emulated: put the image on it with `mcuforge firmware flash` (make flash)")
    return [
        tool(QEMU, "qemu-system-arm"),
        "-M", image.board.qemu_machine,
        "-nographic", "-monitor", "none", "-serial", "null",
        "-semihosting-config", "enable=on,target=native",
        "-icount", f"shift={QEMU_ICOUNT_SHIFT}",
        *extra,
        "-kernel", str(image.elf),
    ]  # fmt: skip


def run_qemu(image: FirmwareImage, timeout: float = 120.0) -> RunResult:
    """Run the image in QEMU until the application exits (or `timeout` seconds), and parse what it printed."""
    try:
        proc = subprocess.run(qemu_command(image), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(
            f"{image.elf} did not finish in QEMU ({image.board.qemu_machine}) within {timeout:.0f} s: "
            "the firmware hung or the model is too slow for the emulator; raise the timeout or use fewer vectors"
        ) from None
    what = f"{image.model_name} failed on {image.board.name} (QEMU {image.board.qemu_machine})"
    return check_run(parse_run(proc.stdout), proc.returncode, proc.stderr, what)
