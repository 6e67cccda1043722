"""Instructions per inference counted under QEMU by the qemu-icount TCG plugin.

The plugin (../shared/tools/qemu-icount/count.c, compiled into build/qemu-icount/)
counts every guest instruction executed between the firmware's two calls to
mf_app_mark() around mf_invoke(): exact and repeatable, the engine's
instructions per inference on the board's instruction set; not silicon cycles
(see bench/firmware_icount.py for what the figures mean).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from mcuforge.errors import MCUForgeError

REPO = Path(__file__).resolve().parent.parent
PLUGIN_SOURCE = REPO.parent / "shared" / "tools" / "qemu-icount" / "count.c"
PLUGIN = REPO / "build" / "qemu-icount" / "libcount.so"
_MARK = re.compile(r"^MARK (\d+) total=(\d+) delta=(\d+)", re.M)


def plugin() -> Path:
    """The counting plugin, compiled into build/ (never beside the shared source) when missing or stale."""
    if not PLUGIN_SOURCE.is_file():
        raise MCUForgeError(f"the qemu-icount plugin source {PLUGIN_SOURCE} is missing: instructions cannot be counted without it")
    if not PLUGIN.exists() or PLUGIN.stat().st_mtime < PLUGIN_SOURCE.stat().st_mtime:
        PLUGIN.parent.mkdir(parents=True, exist_ok=True)
        tmp = PLUGIN.with_suffix(f".{os.getpid()}.tmp.so")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(tmp), str(PLUGIN_SOURCE)], check=True)
        tmp.replace(PLUGIN)
    return PLUGIN


def mark_address(elf: Path) -> int:
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^([0-9a-f]+) T mf_app_mark$", symbols, re.M)
    if match is None:
        raise MCUForgeError(f"{elf} has no mf_app_mark symbol: build it with mcuforge.firmware.build.build_image")
    return int(match[1], 16)


def instructions_per_inference(image, timeout: float = 600) -> int:
    """Instructions between the marks around the first mf_invoke (mark 0 -> mark 1) of FirmwareImage `image`."""
    from mcuforge.firmware.console import parse_run
    from mcuforge.firmware.qemu import qemu_command

    extra = ["-plugin", f"{plugin()},mark=0x{mark_address(image.elf):x}", "-d", "plugin"]
    proc = subprocess.run(qemu_command(image, extra), capture_output=True, text=True, timeout=timeout)
    marks = {int(m[1]): int(m[3]) for m in _MARK.finditer(proc.stderr)}
    if proc.returncode != 0 or not parse_run(proc.stdout).done or 1 not in marks:
        raise MCUForgeError(f"{image.elf} on {image.board.name}: run failed (status {proc.returncode}): {proc.stdout[-400:]} {proc.stderr[-400:]}")
    return marks[1]
