"""Instructions per inference under QEMU, and flash/RAM per board from the map file.

    python bench/firmware_icount.py [--models a.tflite b.tflite] [--targets qemu-m4 ...]

What the figures mean. QEMU is not cycle accurate: it translates guest code to
host code and has no pipeline, cache, flash wait-state or bus model. The count
here is exact and repeatable, though: the qemu-icount TCG plugin
(/work/shared/tools/qemu-icount, built into build/qemu-icount/) counts every
guest instruction executed between the two calls to mf_app_mark() around
mf_invoke(), so the figure is the engine's instructions per inference on that
core's instruction set (Thumb-2 with or without DSP/FPU/MVE as the board's
-mcpu allows). On silicon a MAC, a load and a taken branch cost different
cycles, differently per core, so use the counts to compare kernels, engines
and compiler flags on the same emulated core, not as cycle predictions.
The "SysTick" column is what the firmware itself reports: QEMU runs with
-icount (one instruction = 2**shift ns of virtual time), so SysTick ticks are
instructions x clock_hz / 1e9: a cross-check of the plugin, not silicon cycles.
Flash is .text + .data, RAM is .data + .bss (arena included) + stack, both
read from the linker's map file.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_MODELS = REPO.parent / "shared" / "models" / "tflite-micro"
PLUGIN_SOURCE = REPO.parent / "shared" / "tools" / "qemu-icount" / "count.c"
PLUGIN = REPO / "build" / "qemu-icount" / "libcount.so"
DEFAULT_MODELS = [
    SHARED_MODELS / "hello_world" / "hello_world_int8.tflite",
    SHARED_MODELS / "micro_speech" / "micro_speech_quantized.tflite",
    SHARED_MODELS / "person_detection" / "person_detect.tflite",
]
QEMU_TARGETS = ["qemu-m3", "qemu-m4", "qemu-m7", "qemu-m33", "qemu-m55"]
REAL_TARGETS = ["stm32f746g-disco", "nrf52840dk", "rp2040-pico"]
_MARK = re.compile(r"^MARK (\d+) total=(\d+) delta=(\d+)", re.M)


def plugin() -> Path:
    """The counting plugin, compiled into build/ (never beside the shared source) when missing or stale."""
    if not PLUGIN.exists() or PLUGIN.stat().st_mtime < PLUGIN_SOURCE.stat().st_mtime:
        PLUGIN.parent.mkdir(parents=True, exist_ok=True)
        tmp = PLUGIN.with_suffix(".tmp.so")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(tmp), str(PLUGIN_SOURCE)], check=True)
        tmp.replace(PLUGIN)
    return PLUGIN


def mark_address(elf: Path) -> int:
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^([0-9a-f]+) T mf_app_mark$", symbols, re.M)
    if match is None:
        raise SystemExit(f"{elf} has no mf_app_mark symbol")
    return int(match[1], 16)


def instructions_per_inference(image, timeout: float = 600) -> int:
    """Instructions between the marks around the first mf_invoke (mark 0 -> mark 1)."""
    from mcuforge.firmware.console import parse_run
    from mcuforge.firmware.qemu import qemu_command

    extra = ["-plugin", f"{plugin()},mark=0x{mark_address(image.elf):x}", "-d", "plugin"]
    proc = subprocess.run(qemu_command(image, extra), capture_output=True, text=True, timeout=timeout)
    marks = {int(m[1]): int(m[3]) for m in _MARK.finditer(proc.stderr)}
    if proc.returncode != 0 or not parse_run(proc.stdout).done or 1 not in marks:
        raise SystemExit(f"{image.elf} on {image.board.name}: run failed (status {proc.returncode}): {proc.stdout[-400:]} {proc.stderr[-400:]}")
    return marks[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--targets", nargs="+", default=QEMU_TARGETS + REAL_TARGETS)
    parser.add_argument("--kernels", default=None, help="engine kernel set (portable or a kernels/<variant>) [default: each board's]")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "firmware")
    args = parser.parse_args(argv)

    from mcuforge.errors import MCUForgeError
    from mcuforge.firmware.build import build_image
    from mcuforge.firmware.qemu import run_qemu

    header = f"{'model':<24} {'target':<17} {'insns/inference':>16} {'SysTick':>11} {'flash B':>10} {'flash %':>8} {'RAM B':>9} {'RAM %':>6} {'arena B':>8}"
    print(header)
    print("-" * len(header))
    for model in args.models:
        for target in args.targets:
            try:
                image = build_image(model, target, out_dir=args.out / target, kernels=args.kernels)
            except MCUForgeError as exc:
                print(f"{model.stem:<24} {target:<17} does not build: {exc}")
                continue
            size = image.size
            if image.board.emulated:
                insns = f"{instructions_per_inference(image):,}"
                run = run_qemu(image)
                systick = f"{run.cycles[0]:,}"
                arena = f"{run.arena_used:,}"
            else:
                insns, systick, arena = "(board)", "-", "-"
            print(
                f"{model.stem:<24} {target:<17} {insns:>16} {systick:>11} {size.flash_used:>10,} {100 * size.flash_used / size.flash_limit:>7.1f}%"
                f" {size.ram_used:>9,} {100 * size.ram_used / size.ram_limit:>5.1f}% {arena:>8}"
            )
            sys.stdout.flush()
    print("\ninsns/inference: guest instructions between the marks around mf_invoke (QEMU TCG plugin); not silicon cycles.")
    print("SysTick: the firmware's own count under -icount = insns x clock_hz / 1e9. arena B: mf_arena_used on the target (32-bit).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
