"""Engine speed on Cortex-M4 (qemu-m4, mps2-an386): portable against DSP kernels, in exact instructions.

    python bench/engine_icount.py [--models a.tflite ...] [--breakdown]      (make bench-engine)

Each model's firmware is built twice for qemu-m4, with the portable kernels
(the reference) and with the DSP kernels (kernels/dsp/), and run once in
QEMU with the qemu-icount plugin (see bench/firmware_icount.py for what such
counts mean). One row per model: MACs, both instruction counts per inference,
instructions per MAC, and the ratios to TFLM's figures measured the same way
(issue 9). Where a target is missed, or with --breakdown, a per-op table
follows: the plugin's mark is put on the instruction in mf_invoke that calls
each kernel's eval, so consecutive marks bracket one op (its eval plus the
engine's per-op bookkeeping); the last op is the rest of the inference.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from firmware_icount import REPO, SHARED_MODELS, instructions_per_inference, plugin  # noqa: E402

TARGET = "qemu-m4"
OUT = REPO / "build" / "bench" / "engine"
KEYWORDS_MODEL = REPO / "build" / "keywords" / "train" / "model.h5"
# TFLM on the same emulated Cortex-M4, same counting (issue 9): MACs, reference kernels, CMSIS-NN, arena bytes.
TFLM = {
    "hello_world_int8": (288, 5_235, 3_530, 676),
    "micro_speech_quantized": (336_000, 9_310_574, 1_476_081, 6_788),
    "person_detect": (7_160_000, 95_162_698, 22_572_981, 82_292),
}
DSP_AIM = 0.8  # of TFLM + CMSIS-NN
ARENA_LIMIT = 0.8  # of TFLM's arena
_MARK = re.compile(r"^MARK (\d+) total=(\d+) delta=(\d+)", re.M)
_BLX = re.compile(r"^\s*([0-9a-f]+):\s+[0-9a-f ]+\s+blx\s+r\d+", re.M)


@dataclass
class Count:
    instructions: int
    arena: int
    ops: list[tuple[str, int, int]]  # (op name, MACs, instructions)


def keywords_ds_cnn() -> Path:
    """The keyword DS-CNN as int8: the trained one (build/keywords) when there is one, else seeded random weights."""
    import mcuforge  # noqa: F401  (Keras 2 before TensorFlow)
    import tensorflow as tf

    from mcuforge.deploy.convert import convert_model
    from mcuforge.train import zoo

    trained = KEYWORDS_MODEL.is_file()
    path = OUT / ("keywords_ds_cnn.tflite" if trained else "ds_cnn_random.tflite")
    if not path.exists():
        tf.keras.utils.set_random_seed(0)
        model = tf.keras.models.load_model(KEYWORDS_MODEL) if trained else zoo.build("ds_cnn", (49, 10, 1), 12, 1.0)
        representative = np.random.default_rng(0).normal(size=(64, *model.input_shape[1:])).astype(np.float32)
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(convert_model(model, representative))
        tmp.replace(path)
    return path


def op_macs(model_path: Path) -> list[tuple[str, int]]:
    """Each operator's name and multiply-accumulates (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED; 0 for others)."""
    from mcuforge.deploy.tflite_model import parse_tflite

    graph = parse_tflite(model_path.read_bytes(), str(model_path)).main
    result = []
    for op in graph.operators:
        name = op.opcode
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            out = int(np.prod(graph.tensors[op.outputs[0]].shape))
            weights = graph.tensors[op.inputs[1]].shape
            per_output = int(np.prod(weights[1:])) if name != "DEPTHWISE_CONV_2D" else int(np.prod(weights[1:3]))
            result.append((name, out * per_output))
        else:
            result.append((name, 0))
    return result


def eval_call_address(elf: Path) -> int:
    """The address of the one indirect call in mf_invoke: the call of each op's eval."""
    listing = subprocess.run(["arm-none-eabi-objdump", "-d", "--disassemble=mf_invoke", str(elf)], capture_output=True, text=True, check=True).stdout
    calls = _BLX.findall(listing)
    if len(calls) != 1:
        raise SystemExit(f"{elf}: expected one indirect call in mf_invoke, found {len(calls)}")
    return int(calls[0], 16)


def per_op_instructions(image, total: int, op_count: int) -> list[int]:
    """Instructions of each op: deltas between consecutive eval calls; the last op gets the rest of `total`."""
    from mcuforge.firmware.qemu import qemu_command

    extra = ["-plugin", f"{plugin()},mark=0x{eval_call_address(image.elf):x}", "-d", "plugin"]
    proc = subprocess.run(qemu_command(image, extra), capture_output=True, text=True, timeout=600)
    deltas = [int(m[3]) for m in _MARK.finditer(proc.stderr)]
    if len(deltas) < op_count:
        raise SystemExit(f"{image.elf}: {len(deltas)} eval calls seen, the model has {op_count} ops")
    counts = deltas[1:op_count]
    return [*counts, total - sum(counts)]


def measure(model_path: Path, kernels: str, breakdown: bool) -> Count:
    from mcuforge.firmware.build import build_image
    from mcuforge.firmware.qemu import run_qemu

    image = build_image(model_path, TARGET, out_dir=OUT / kernels, kernels=kernels)
    instructions = instructions_per_inference(image)
    arena = run_qemu(image, timeout=600).arena_used
    macs = op_macs(model_path)
    ops = []
    if breakdown:
        counts = per_op_instructions(image, instructions, len(macs))
        ops = [(name, m, c) for (name, m), c in zip(macs, counts)]
    return Count(instructions, arena, ops)


def _ratio(ours: int, theirs: int | None) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path)
    parser.add_argument("--breakdown", action="store_true", help="per-op tables for every model, not only where a target is missed")
    args = parser.parse_args(argv)
    models = args.models or [
        SHARED_MODELS / "hello_world" / "hello_world_int8.tflite",
        SHARED_MODELS / "micro_speech" / "micro_speech_quantized.tflite",
        SHARED_MODELS / "person_detection" / "person_detect.tflite",
        keywords_ds_cnn(),
    ]
    header = (
        f"{'model':<24} {'MACs':>10} {'portable':>12} {'insn/MAC':>8} {'/TFLM ref':>9} {'dsp':>12} {'insn/MAC':>8}"
        f" {'/CMSIS-NN':>9} {'arena B':>8} {'/TFLM':>6}"
    )
    print(header)
    print("-" * len(header))
    details = []
    for model in models:
        macs = sum(m for _, m in op_macs(model))
        _, tflm_ref, tflm_cmsis, tflm_arena = TFLM.get(model.stem, (None, None, None, None))
        portable = measure(model, "portable", args.breakdown)
        dsp = measure(model, "dsp", args.breakdown)
        print(
            f"{model.stem:<24} {macs:>10,} {portable.instructions:>12,} {portable.instructions / macs:>8.2f} {_ratio(portable.instructions, tflm_ref):>9}"
            f" {dsp.instructions:>12,} {dsp.instructions / macs:>8.2f} {_ratio(dsp.instructions, tflm_cmsis):>9}"
            f" {dsp.arena:>8,} {_ratio(dsp.arena, tflm_arena):>6}"
        )
        sys.stdout.flush()
        missed = tflm_ref is not None and (portable.instructions > tflm_ref or dsp.instructions > DSP_AIM * tflm_cmsis)
        if args.breakdown or missed:
            if not portable.ops:
                portable.ops = measure(model, "portable", True).ops
                dsp.ops = measure(model, "dsp", True).ops
            details.append((model.stem, portable, dsp))
    for name, portable, dsp in details:
        print(f"\n{name}: per op (instructions; eval plus the engine's per-op bookkeeping)")
        print(f"  {'#':>3} {'op':<20} {'MACs':>10} {'portable':>12} {'dsp':>12} {'dsp insn/MAC':>12} {'dsp share':>9}")
        for index, ((op, macs, p), (_, _, d)) in enumerate(zip(portable.ops, dsp.ops)):
            per_mac = f"{d / macs:.2f}" if macs else "-"
            print(f"  {index:>3} {op:<20} {macs:>10,} {p:>12,} {d:>12,} {per_mac:>12} {100 * d / dsp.instructions:>8.1f}%")
    print(
        f"\nTargets (issue 9): dsp <= TFLM + CMSIS-NN, aiming at {DSP_AIM}x; portable <= TFLM reference kernels;"
        f" arena (dsp scratch included, on the target) <= {ARENA_LIMIT}x TFLM's."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
