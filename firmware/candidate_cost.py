"""What a candidate architecture costs on the deploy target, measured before it is trained.

Flash and RAM are exact: the candidate is converted to int8 by the project's
converter (random weights change neither sizes nor instruction counts) and
prepared by the host build of the engine the firmware links, with the kernel
set of the target's core, with the build choice the firmware makes under its code
budget (code_budget.budgeted_image: narrow 3x3 depthwise layers go channel-major
when the NHWC loops do not fit); flash is the prepared image the firmware
carries, RAM the planner's arena, DSP scratch included. Instructions per
inference come from the per-op cost model fitted on QEMU counts of that core
(latency_model.py), for the loops that build choice runs.

    >>> cost = candidate_cost(model, representative, "cortex-m4-256k")   # doctest: +SKIP
    >>> cost.flash_bytes, cost.arena_bytes, cost.instructions, cost.macs
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.deploy.targets import load_chip, load_target
from mcuforge.errors import MCUForgeError
from mcuforge.firmware.boards import load_board
from mcuforge.firmware.code_budget import DEFAULT_CODE_BUDGET, budgeted_image
from mcuforge.firmware.latency_model import latency_model, op_macs
from mcuforge.train.search.target import CandidateCost

# The QEMU board that measures each core. QEMU emulates no Cortex-M0+: its code
# (Armv6-M, compiled with -mcpu=cortex-m0plus) runs as is on qemu-m3's Cortex-M3
# (firmware.boards.Board.compiled_for), so the counts are the M0+ code's.
QEMU_BOARD_OF_CPU = {
    "cortex-m0plus": "qemu-m3",
    "cortex-m3": "qemu-m3",
    "cortex-m4": "qemu-m4",
    "cortex-m7": "qemu-m7",
    "cortex-m33": "qemu-m33",
    "cortex-m55": "qemu-m55",
}


@dataclass(frozen=True)
class TargetCore:
    """The core a deploy target's firmware runs on: its engine kernel set and the QEMU board that measures it."""

    target: str
    cpu: str
    kernels: str  # "dsp" on cores with the DSP extension (M4, M7, M33, M55), else "portable"
    qemu_board: str

    @property
    def cflags(self) -> list[str]:
        """The compiler's core flags of the firmware measured_cost builds (the QEMU board compiled for the core)."""
        return load_board(self.qemu_board).compiled_for(self.cpu).cflags


def target_core(target: str) -> TargetCore:
    """The core deploy target `target` runs our engine on; MCUForgeError for unknown targets or cores."""
    stated = load_target(target)
    if stated.cpu not in QEMU_BOARD_OF_CPU:
        raise MCUForgeError(
            f"target {target!r}: core {stated.cpu} has no cost model (cores: {', '.join(QEMU_BOARD_OF_CPU)}); choose a target with one of these cores"
        )
    chip = load_chip(stated.chip, f"target {target}")
    return TargetCore(target, stated.cpu, "dsp" if chip.dsp else "portable", QEMU_BOARD_OF_CPU[stated.cpu])


def tflite_cost(model: bytes, target: str, source: str = "candidate", code_budget: int = DEFAULT_CODE_BUDGET) -> CandidateCost:
    """The costs of an int8 .tflite on `target` (see candidate_cost), built under `code_budget` bytes of runner code
    as build_image would build it."""
    core = target_core(target)
    built = budgeted_image(model, core.kernels, code_budget, core.cflags, source)
    instructions = latency_model(core.cpu, core.kernels).instructions(model, source, built.choices)
    return CandidateCost(len(built.image.data), built.image.arena_bytes, instructions, sum(macs for _, macs in op_macs(model, source)))


def candidate_cost(model, representative: np.ndarray, target: str) -> CandidateCost:
    """The costs on `target` of tf_keras `model` (trained or not) as the firmware would run it as int8.

    representative: a few input samples to calibrate the int8 conversion
    (any values of the input's shape: ranges change no size or count).
    Raises MCUForgeError for an unknown target, a core without a cost model,
    or an op the converter, the engine or the cost model does not take.
    """
    from mcuforge.deploy.convert import convert_model

    return tflite_cost(convert_model(model, representative), target, model.name)


def measured_cost(model_path: Path, target: str, out_dir: Path) -> CandidateCost:
    """The costs on `target` of the int8 .tflite at `model_path`, all measured on the firmware built into `out_dir`
    (the target core's kernels and -mcpu, on its QEMU board): its prepared image and arena, as tflite_cost
    measures them, and instructions per inference counted under QEMU."""
    from mcuforge.firmware.build import build_image
    from mcuforge.firmware.icount import instructions_per_inference

    core = target_core(target)
    firmware = build_image(model_path, core.qemu_board, out_dir=out_dir, kernels=core.kernels, cpu=core.cpu)
    macs = sum(count for _, count in op_macs(Path(model_path).read_bytes(), str(model_path)))
    return CandidateCost(firmware.size.model, firmware.size.arena, instructions_per_inference(firmware), macs)


def reference_cost(model, representative: np.ndarray, directory: Path, target: str) -> CandidateCost:
    """measured_cost of tf_keras `model` converted to int8 as candidate_cost does (reference.tflite and its
    firmware are written into `directory`)."""
    from mcuforge.artifacts import write_bytes_atomic
    from mcuforge.deploy.convert import convert_model

    path = Path(directory) / "reference.tflite"
    write_bytes_atomic(path, convert_model(model, representative))
    return measured_cost(path, target, Path(directory) / "reference_firmware")
