"""Engine speed, RAM and flash on Cortex-M4 (qemu-m4, mps2-an386) for both paths, in exact instructions.

    python bench/engine_icount.py [--models a.tflite ...] [--json OUT.json] [--breakdown]   (make bench-engine)

Each model's firmware is built for qemu-m4 four times: prepared image and
interpreter (mf_load of the .tflite at boot), each with the portable kernels
(what M0+/M3 boards run) and the DSP kernels (kernels/dsp/), and run in QEMU
with the qemu-icount plugin (see bench/firmware_icount.py for what such
counts mean). Per model and path: MACs, both instruction counts per
inference, the arena the firmware reports (mf_arena_used; the DSP path's,
scratch included), the model data in flash (prepared image or .tflite) and
the engine code linked for the model's kernels at -Os (firmware/code_budget.py:
the image of the build's loop choice under the default code budget),
against TFLM's figures measured the same way (issue 9). With --json the same
figures go to a file. Where a target is missed, or with --breakdown, a per-op
table of the prepared path follows: the plugin's mark is put on the
instruction that calls each kernel's eval, so consecutive marks bracket one op
(its eval plus the runner's per-op bookkeeping); the last op is the rest.
Without --models: the three shared models and four zoo architectures as int8
with seeded random weights (instruction counts do not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from firmware_icount import REPO, SHARED_MODELS  # noqa: E402

from mcuforge.firmware.code_budget import BudgetedImage, LinkedFlash, linked_flash  # noqa: E402
from mcuforge.firmware.icount import instructions_per_inference, plugin  # noqa: E402

from mcuforge.firmware.latency_model import op_macs  # noqa: E402

TARGET = "qemu-m4"
OUT = REPO / "build" / "bench" / "engine"
JSON_OUT = REPO / "build" / "bench" / "engine.json"
PATHS = {"prepared": True, "interpreter": False}
# The call of each op's eval in each path's invoke function.
INVOKE_FUNCTION = {"prepared": "mf_prepared_invoke", "interpreter": "mf_invoke"}
# TFLM on the same emulated Cortex-M4, same counting (issue 9): reference kernels, CMSIS-NN, arena bytes.
TFLM = {
    "hello_world_int8": (5_235, 3_530, 676),
    "micro_speech_quantized": (9_310_574, 1_476_081, 6_788),
    "person_detect": (95_162_698, 22_572_981, 82_292),
}
DSP_AIM = 0.8  # of TFLM + CMSIS-NN
ARENA_AIM = 0.6  # of TFLM's arena
PER_MAC_AIM = {"conv": 2.3, "dense": 2.0}  # DSP instructions per MAC, models without TFLM figures
# Zoo architectures as int8 (arch, input shape, classes, width, options), sized like MLPerf Tiny's
# where random weights allow: MobileNet keeps 4 blocks at 32x32 (tests/engine/test_engine_zoo.py says why).
ZOO = [
    ("ds_cnn", (49, 10, 1), 12, 1.0, {}),
    ("mobilenet_v1", (32, 32, 3), 4, 0.25, {"blocks": 4}),
    ("resnet8", (32, 32, 3), 10, 1.0, {}),
    ("autoencoder", (640,), 0, 1.0, {}),
]
_MARK = re.compile(r"^MARK (\d+) total=(\d+) delta=(\d+)", re.M)
_BLX = re.compile(r"^\s*([0-9a-f]+):\s+[0-9a-f ]+\s+blx\s+r\d+", re.M)


@dataclass
class Count:
    instructions: int
    arena: int
    ops: list[tuple[str, int, int]]  # (op name, MACs, instructions)
    budgeted: BudgetedImage | None  # the build's prepared image and loop choice (FirmwareImage.budgeted)


def zoo_model(arch: str, shape, classes: int, width: float, options: dict) -> Path:
    """A zoo architecture converted to int8 with seeded random weights and calibration data (same seed, same bytes)."""
    path = OUT / f"{arch}_random.tflite"
    if not path.exists():
        import mcuforge  # noqa: F401  (Keras 2 before TensorFlow)
        import tensorflow as tf

        from mcuforge.deploy.convert import convert_model
        from mcuforge.train import zoo

        tf.keras.utils.set_random_seed(0)
        model = zoo.build(arch, shape, classes, width, **options)
        representative = np.random.default_rng(0).normal(size=(64, *shape)).astype(np.float32)
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(convert_model(model, representative))
        tmp.replace(path)
    return path


def eval_call_address(elf: Path, function: str) -> int:
    """The address of the one indirect call in `function`: the call of each op's eval."""
    listing = subprocess.run(["arm-none-eabi-objdump", "-d", f"--disassemble={function}", str(elf)], capture_output=True, text=True, check=True).stdout
    calls = _BLX.findall(listing)
    if len(calls) != 1:
        raise SystemExit(f"{elf}: expected one indirect call in {function}, found {len(calls)}")
    return int(calls[0], 16)


def per_op_instructions(image, function: str, total: int, op_count: int) -> list[int]:
    """Instructions of each op: deltas between consecutive eval calls; the last op gets the rest of `total`."""
    from mcuforge.firmware.qemu import qemu_command

    extra = ["-plugin", f"{plugin()},mark=0x{eval_call_address(image.elf, function):x}", "-d", "plugin"]
    proc = subprocess.run(qemu_command(image, extra), capture_output=True, text=True, timeout=600)
    deltas = [int(m[3]) for m in _MARK.finditer(proc.stderr)]
    if len(deltas) < op_count:
        raise SystemExit(f"{image.elf}: {len(deltas)} eval calls seen, the model has {op_count} ops")
    counts = deltas[1:op_count]
    return [*counts, total - sum(counts)]


def runner_ops(model: bytes, kernels: str, macs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The graph's (op, MACs) as the runner calls them: a DEPTHWISE_CONV_2D fused with its FULLY_CONNECTED
    (kernels/mf_depthwise_fc.h) is one op, named after both, both ops' MACs."""
    from mcuforge.firmware.prepared import FUSED_DEPTHWISE_FC, op_kernel_codes, prepared_image

    ops, index = [], 0
    for code in op_kernel_codes(prepared_image(model, kernels)):
        taken = macs[index:index + (2 if code == FUSED_DEPTHWISE_FC else 1)]
        ops.append(("+".join(name for name, _ in taken), sum(m for _, m in taken)))
        index += len(taken)
    return ops


def measure(model_path: Path, path: str, kernels: str, breakdown: bool) -> Count:
    """Instructions per inference and arena of `model_path` on qemu-m4 through `path` with kernel set `kernels`."""
    from mcuforge.firmware.build import build_image
    from mcuforge.firmware.qemu import run_qemu

    image = build_image(model_path, TARGET, out_dir=OUT / path / kernels, kernels=kernels, prepared=PATHS[path])
    instructions = instructions_per_inference(image)
    arena = run_qemu(image, timeout=600).arena_used
    ops = []
    if breakdown:
        macs = runner_ops(model_path.read_bytes(), kernels, op_macs(model_path.read_bytes(), str(model_path)))
        counts = per_op_instructions(image, INVOKE_FUNCTION[path], instructions, len(macs))
        ops = [(name, m, c) for (name, m), c in zip(macs, counts)]
    return Count(instructions, arena, ops, image.budgeted)


def built_flash(model: bytes, kernels: str, budgeted: BudgetedImage | None) -> LinkedFlash:
    """The flash of the firmware as built: the prepared image of the build's loop choice (its link as the budget
    measured it, where choices differ) or, without one, the interpreter and the .tflite."""
    if budgeted is None:
        return linked_flash(model, kernels, None)
    return budgeted.linked.get(budgeted.choices) or linked_flash(model, kernels, budgeted.image)


def model_figures(model_path: Path) -> dict:
    """The JSON record of one model: MACs, .tflite bytes, and per path what the issue asks for."""
    model = model_path.read_bytes()
    record = {"model": model_path.stem, "tflite": str(model_path), "tflite_bytes": len(model),
              "macs": sum(m for _, m in op_macs(model_path.read_bytes(), str(model_path)))}
    for path in PATHS:
        counts = {kernels: measure(model_path, path, kernels, False) for kernels in ("portable", "dsp")}
        portable, dsp = counts["portable"], counts["dsp"]
        linked = {kernels: built_flash(model, kernels, count.budgeted) for kernels, count in counts.items()}
        record[path] = {
            "portable_instructions": portable.instructions, "dsp_instructions": dsp.instructions,
            "arena_bytes": dsp.arena, "portable_arena_bytes": portable.arena,
            "flash_model_bytes": linked["dsp"].model_bytes, "code_bytes": linked["dsp"].code_bytes,
            "portable_code_bytes": linked["portable"].code_bytes, "soft_double_linked": linked["dsp"].soft_double,
            "dsp_engine_loops": dsp.budgeted.describe() if dsp.budgeted else "",
        }
    return record


def write_json(records: list[dict], out: Path) -> None:
    """Write the records atomically (a reader never sees half a file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"target": TARGET, "models": records}, indent=2) + "\n")
    tmp.replace(out)


def _ratio(ours: int, theirs: int | None) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def print_row(record: dict) -> None:
    tflm_ref, tflm_cmsis, tflm_arena = TFLM.get(record["model"], (None, None, None))
    macs = record["macs"]
    for path in PATHS:
        row = record[path]
        portable, dsp = row["portable_instructions"], row["dsp_instructions"]
        print(
            f"{record['model']:<24} {path:<11} {macs:>10,} {portable:>12,} {portable / macs:>8.2f} {_ratio(portable, tflm_ref):>9}"
            f" {dsp:>12,} {dsp / macs:>8.2f} {_ratio(dsp, tflm_cmsis):>9} {row['arena_bytes']:>8,} {_ratio(row['arena_bytes'], tflm_arena):>6}"
            f" {row['flash_model_bytes']:>9,} {row['flash_model_bytes'] / record['tflite_bytes']:>6.2f} {row['code_bytes']:>7,}"
        )
    sys.stdout.flush()


def print_breakdown(model_path: Path) -> None:
    """Per-op instructions of the prepared path, both kernel sets."""
    portable = measure(model_path, "prepared", "portable", True)
    dsp = measure(model_path, "prepared", "dsp", True)
    print(f"\n{model_path.stem}: per op, prepared path (instructions; eval plus the runner's per-op bookkeeping)")
    print(f"  {'#':>3} {'op':<34} {'MACs':>10} {'portable':>12} {'dsp':>12} {'dsp insn/MAC':>12} {'dsp share':>9}")
    for index, ((op, macs, p), (_, _, d)) in enumerate(zip(portable.ops, dsp.ops)):
        per_mac = f"{d / macs:.2f}" if macs else "-"
        print(f"  {index:>3} {op:<34} {macs:>10,} {p:>12,} {d:>12,} {per_mac:>12} {100 * d / dsp.instructions:>8.1f}%")


def per_mac_aim(model_path: Path) -> float:
    """The DSP instructions-per-MAC aim: dense models (every MAC in FULLY_CONNECTED) have the lower one."""
    dense = all(name == "FULLY_CONNECTED" for name, macs in op_macs(model_path.read_bytes(), str(model_path)) if macs)
    return PER_MAC_AIM["dense" if dense else "conv"]


def missed(record: dict, model_path: Path) -> bool:
    """Whether the prepared path misses a speed target: TFLM's figures where measured, else instructions per MAC."""
    row = record["prepared"]
    if record["model"] not in TFLM:
        return row["dsp_instructions"] > per_mac_aim(model_path) * record["macs"]
    tflm_ref, tflm_cmsis, _ = TFLM[record["model"]]
    return row["portable_instructions"] > tflm_ref or row["dsp_instructions"] > DSP_AIM * tflm_cmsis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="write the figures per model to this file")
    parser.add_argument("--breakdown", action="store_true", help="per-op tables for every model, not only where a target is missed")
    args = parser.parse_args(argv)
    models = args.models or [
        SHARED_MODELS / "hello_world" / "hello_world_int8.tflite",
        SHARED_MODELS / "micro_speech" / "micro_speech_quantized.tflite",
        SHARED_MODELS / "person_detection" / "person_detect.tflite",
        *(zoo_model(*case) for case in ZOO),
    ]
    for model in models:
        if not model.is_file():
            print(f"error: model {model} not found: pass .tflite files to --models", file=sys.stderr)
            return 2
    header = (
        f"{'model':<24} {'path':<11} {'MACs':>10} {'portable':>12} {'insn/MAC':>8} {'/TFLM ref':>9} {'dsp':>12} {'insn/MAC':>8}"
        f" {'/CMSIS-NN':>9} {'arena B':>8} {'/TFLM':>6} {'model B':>9} {'/file':>6} {'code B':>7}"
    )
    print(header)
    print("-" * len(header))
    records = []
    for model in models:
        records.append(model_figures(model))
        print_row(records[-1])
        if args.json:
            write_json(records, args.json)
    for model, record in zip(models, records):
        if args.breakdown or missed(record, model):
            print_breakdown(model)
    print(
        f"\nTargets (issue 14): dsp <= {DSP_AIM}x TFLM + CMSIS-NN; portable <= TFLM reference kernels;"
        f" arena (dsp scratch included) <= {ARENA_AIM}x TFLM's; prepared model data <= 0.85x the .tflite;"
        " code for the model's kernels <= 8 KB at -Os; zoo <= 2.3 insn/MAC conv-heavy, <= 2.0 dense."
        "\narena B: mf_arena_used on qemu-m4, DSP kernels; model B: model data in flash; code B: engine code, DSP kernels, -Os."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
