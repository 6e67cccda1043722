"""Instructions per inference under QEMU, and flash/RAM per board from the map file.

    python bench/firmware_icount.py [--models a.tflite b.tflite] [--targets qemu-m4 ...]

What the figures mean. QEMU is not cycle accurate: it translates guest code to
host code and has no pipeline, cache, flash wait-state or bus model. The count
here is exact and repeatable, though: the qemu-icount TCG plugin
(/work/shared/tools/qemu-icount, built into build/qemu-icount/ by
mcuforge.firmware.icount) counts every
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
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_MODELS = REPO.parent / "shared" / "models" / "tflite-micro"
DEFAULT_MODELS = [
    SHARED_MODELS / "hello_world" / "hello_world_int8.tflite",
    SHARED_MODELS / "micro_speech" / "micro_speech_quantized.tflite",
    SHARED_MODELS / "person_detection" / "person_detect.tflite",
]
QEMU_TARGETS = ["qemu-m3", "qemu-m4", "qemu-m7", "qemu-m33", "qemu-m55"]
REAL_TARGETS = ["stm32f746g-disco", "nrf52840dk", "rp2040-pico"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--targets", nargs="+", default=QEMU_TARGETS + REAL_TARGETS)
    parser.add_argument("--kernels", default=None, help="engine kernel set (portable or a kernels/<variant>) [default: each board's]")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "firmware")
    args = parser.parse_args(argv)

    from mcuforge.errors import MCUForgeError
    from mcuforge.firmware.build import build_image
    from mcuforge.firmware.icount import instructions_per_inference
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
