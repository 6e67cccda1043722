"""Arm Ethos-U NPUs through Vela: the optimized model, its real estimates, and the Corstone C array.

Vela (the `ethos-u-vela` package) rewrites a full-integer .tflite so that the
ops the NPU can run become one `ethos-u` custom op; the rest stay TFLite ops
for TFLM on the Cortex-M beside it. Its figures (NPU cycles, SRAM and flash
use, ops left to the CPU) come from Vela's own summary CSV and stdout, parsed
here, never estimated by us. The optimized model is rendered as a C99 array
(16-byte aligned, as the Ethos-U driver requires of the command stream) for a
Corstone-300 (Cortex-M55) or Corstone-310 (Cortex-M85) board.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from mcuforge.artifacts import write_bytes_atomic, write_json_atomic, write_text_atomic
from mcuforge.deploy.carray import array_declaration, array_definition, check_identifier
from mcuforge.deploy.tflite_model import int4_as_int8, read_tflite
from mcuforge.errors import MCUForgeError

ACCELERATORS = (
    "ethos-u55-32",
    "ethos-u55-64",
    "ethos-u55-128",
    "ethos-u55-256",
    "ethos-u65-256",
    "ethos-u65-512",
    "ethos-u85-128",
    "ethos-u85-256",
    "ethos-u85-512",
    "ethos-u85-1024",
    "ethos-u85-2048",
)
DEFAULT_ACCELERATOR = "ethos-u55-128"
# System configuration and memory mode from Vela's bundled Arm/vela.ini, per NPU family:
# the U55 shares SRAM with the CPU and streams weights from flash; U65/U85 sit beside DRAM.
_FAMILY_CONFIG = {
    "ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
    "ethos-u65": ("Ethos_U65_High_End", "Dedicated_Sram"),
    "ethos-u85": ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram"),
}
# Arm's reference subsystems and the NPUs their FVPs and boards carry.
BOARDS = {"corstone-300": ("ethos-u55",), "corstone-310": ("ethos-u55", "ethos-u65")}
VELA_TIMEOUT_S = 600
NPU_CUSTOM_OP = "ethos-u"  # the custom op Vela puts in place of the ops the NPU runs


@dataclass(frozen=True)
class CpuOperator:
    """An op Vela leaves to TFLM on the Cortex-M, with Vela's reason."""

    op: str
    output: str
    reason: str


@dataclass(frozen=True)
class NpuEstimate:
    """Vela's performance summary of one compiled model."""

    model: str
    optimized_model: str
    accelerator: str
    system_config: str
    memory_mode: str
    clock_hz: float
    npu_cycles: int
    total_cycles: int
    inference_time_s: float
    inferences_per_second: float
    macs: int
    sram_bytes: int
    off_chip_flash_bytes: int
    on_chip_flash_bytes: int
    dram_bytes: int
    original_weight_bytes: int
    encoded_weight_bytes: int
    npu_ops: int
    cpu_ops: int
    npu_command_streams: int
    cpu_operators: list[CpuOperator]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> NpuEstimate:
        return cls(**{**data, "cpu_operators": [CpuOperator(**op) for op in data["cpu_operators"]]})

    def markdown(self) -> str:
        lines = [
            f"## Ethos-U NPU ({self.accelerator}, Vela estimate)",
            "",
            f"- system: {self.system_config}, memory mode {self.memory_mode}, clock {self.clock_hz / 1e6:g} MHz",
            f"- NPU cycles: {self.npu_cycles:,}; total cycles with memory access: {self.total_cycles:,}",
            f"- inference time on the NPU: {self.inference_time_s * 1e3:.3f} ms ({self.inferences_per_second:,.0f} inferences/s)",
            f"- SRAM used: {self.sram_bytes:,} B; off-chip flash used: {self.off_chip_flash_bytes:,} B"
            + (f"; DRAM used: {self.dram_bytes:,} B" if self.dram_bytes else ""),
            f"- weights: {self.original_weight_bytes:,} B original, {self.encoded_weight_bytes:,} B NPU-encoded",
            f"- NPU operations (Vela's lowered ops): {self.npu_ops} in {self.npu_command_streams} ethos-u op(s); "
            f"TFLite ops left to the CPU: {self.cpu_ops}",
        ]
        lines += [f"  - CPU: {op.op} ({op.output}): {op.reason}" for op in self.cpu_operators]
        return "\n".join(lines) + "\n"


def vela_command() -> list[str]:
    """Vela run by this interpreter, so the venv's copy is used even when its bin/ is not on PATH."""
    try:
        import ethosu.vela  # noqa: F401
    except ImportError:
        raise MCUForgeError(
            "Vela (the ethos-u-vela package) is not installed: run `pip install ethos-u-vela` "
            "or `pip install -e '.[npu]'` in this environment"
        ) from None
    return [sys.executable, "-m", "ethosu.vela"]


def family(accelerator: str) -> str:
    if accelerator not in ACCELERATORS:
        raise MCUForgeError(f"unknown accelerator {accelerator!r}: expected one of {', '.join(ACCELERATORS)}")
    return accelerator.rsplit("-", 1)[0]


def check_board(board: str, accelerator: str) -> None:
    """Raise MCUForgeError when `board` does not carry `accelerator`'s NPU family."""
    if board not in BOARDS:
        raise MCUForgeError(f"unknown board {board!r}: expected one of {', '.join(BOARDS)}")
    if family(accelerator) not in BOARDS[board]:
        raise MCUForgeError(
            f"board {board} carries {' or '.join(BOARDS[board])}, not {accelerator}: "
            f"choose an accelerator of that family (e.g. {BOARDS[board][0]}-128) or another board"
        )


def target_accelerator(target: str | None) -> str:
    """The Ethos-U of deploy target `target` (ethos-u55-128 without one)."""
    if target is None:
        return DEFAULT_ACCELERATOR
    from mcuforge.deploy.targets import load_target

    accelerator = load_target(target).accelerator
    if accelerator not in ACCELERATORS:
        raise MCUForgeError(f"target {target} has no Ethos-U NPU (accelerator: {accelerator}): choose a target such as cortex-m55-ethos-u55")
    return accelerator


def compile_for_npu(model_path: Path | str, out_dir: Path | str, accelerator: str = DEFAULT_ACCELERATOR) -> NpuEstimate:
    """Run Vela on `model_path`; keep `NAME_vela.tflite`, Vela's summary CSV and `NAME_vela.json` in `out_dir`.

    Raises MCUForgeError when the model is not a readable .tflite, the accelerator
    is unknown or Vela fails (its last error line is quoted).
    """
    model_path = Path(model_path)
    model = read_tflite(model_path)  # a corrupt or missing file fails here, with its name, before Vela's traceback
    system_config, memory_mode = _FAMILY_CONFIG[family(accelerator)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".vela.") as staging:
        source = model_path
        if any(t.dtype == "int4" for g in model.subgraphs for t in g.tensors):
            # Vela 5.2 crashes on INT4 tensors (SIGFPE): it gets the same values as int8, then encodes weights its own way.
            source = Path(staging) / "int8" / model_path.name
            source.parent.mkdir()
            source.write_bytes(int4_as_int8(model_path.read_bytes()))
        command = vela_command() + [
            "--config", "Arm/vela.ini",
            "--accelerator-config", accelerator,
            "--system-config", system_config,
            "--memory-mode", memory_mode,
            "--output-dir", staging,
            str(source),
        ]  # fmt: skip
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=VELA_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise MCUForgeError(f"Vela did not finish compiling {model_path} within {VELA_TIMEOUT_S} s") from None
        if run.returncode != 0:
            lines = (run.stderr or run.stdout).strip().splitlines()
            raise MCUForgeError(f"Vela failed on {model_path} for {accelerator}: {lines[-1] if lines else 'no output'}")
        stem = model_path.stem
        optimized = Path(staging) / f"{stem}_vela.tflite"
        summary = Path(staging) / f"{stem}_summary_{system_config}.csv"
        if not optimized.is_file() or not summary.is_file():
            raise MCUForgeError(f"Vela reported success on {model_path} but wrote no {optimized.name} or {summary.name}")
        final_model = out_dir / optimized.name
        estimate = parse_vela_output(summary.read_text(), run.stdout, str(model_path), optimized, str(final_model))
        write_text_atomic(out_dir / summary.name, summary.read_text())
        write_bytes_atomic(final_model, optimized.read_bytes())
    write_json_atomic(out_dir / f"{stem}_vela.json", estimate.to_json())
    return estimate


_CPU_WARNING = re.compile(r"^Warning \(supported operators\) operator: (?P<op>\w+), ofm: '(?P<ofm>.*)'\s*\nReason: (?P<reason>.*)$", re.M)
_NPU_OP_COUNT = re.compile(r"^NPU operators = (\d+)", re.M)


def parse_vela_output(summary_csv: str, stdout: str, model: str, optimized_path: Path, optimized_model: str) -> NpuEstimate:
    """Read Vela's summary CSV (one row of figures), its stdout (NPU op count, CPU fallbacks with reasons)
    and the optimized model at `optimized_path` (the ops left to the CPU); `optimized_model` is where it is kept."""
    rows = list(csv.DictReader(summary_csv.splitlines()))
    if len(rows) != 1:
        raise MCUForgeError(f"Vela's summary CSV for {model} has {len(rows)} rows, expected 1")
    row = rows[0]

    def number(key: str) -> float:
        try:
            return float(row[key])
        except (KeyError, ValueError):
            raise MCUForgeError(f"Vela's summary CSV for {model} has no number {key!r}: this Vela version is not supported") from None

    npu_ops = _NPU_OP_COUNT.search(stdout)
    if npu_ops is None:
        raise MCUForgeError(f"Vela's output for {model} has no 'NPU operators =' line: this Vela version is not supported")
    # Vela counts its own lowered ops; what TFLM must still run on the CPU is every op of the optimized model but ethos-u.
    optimized_ops = [op.opcode for op in read_tflite(optimized_path).main.operators]
    kib = 1024
    return NpuEstimate(
        model=model,
        optimized_model=optimized_model,
        accelerator=row["accelerator_configuration"].lower().replace("_", "-"),  # Vela writes Ethos_U55_128
        system_config=row["system_config"],
        memory_mode=row["memory_mode"],
        clock_hz=number("core_clock"),
        npu_cycles=int(number("cycles_npu")),
        total_cycles=int(number("cycles_total")),
        inference_time_s=number("inference_time"),
        inferences_per_second=number("inferences_per_second") if number("inference_time") > 0 else 0.0,  # nan with no NPU op
        macs=int(number("nn_macs")),
        sram_bytes=round(number("sram_memory_used") * kib),
        off_chip_flash_bytes=round(number("off_chip_flash_memory_used") * kib),
        on_chip_flash_bytes=round(number("on_chip_flash_memory_used") * kib),
        dram_bytes=round(number("dram_memory_used") * kib),
        original_weight_bytes=int(number("total_original_weights")),
        encoded_weight_bytes=int(number("total_npu_encoded_weights")),
        npu_ops=int(npu_ops.group(1)),
        cpu_ops=sum(op != NPU_CUSTOM_OP for op in optimized_ops),
        npu_command_streams=optimized_ops.count(NPU_CUSTOM_OP),
        cpu_operators=[CpuOperator(m["op"], m["ofm"], m["reason"].strip()) for m in _CPU_WARNING.finditer(stdout)],
    )


def export_c_array(estimate: NpuEstimate, out_dir: Path | str, name: str, board: str = "corstone-300") -> tuple[Path, Path]:
    """Write `NAME_vela.c` and `.h` holding Vela's optimized model for `board`; returns both paths."""
    check_identifier(name)
    check_board(board, estimate.accelerator)
    data = Path(estimate.optimized_model).read_bytes()
    symbol = f"{name}_vela"
    guard = f"{symbol.upper()}_H"
    note = (
        f"/* {Path(estimate.optimized_model).name}: compiled by Vela for {estimate.accelerator} ({estimate.system_config}, "
        f"{estimate.memory_mode}) on {board}.\n"
        f" * Run with TFLM's ethos-u kernel; ops left to the CPU: {estimate.cpu_ops}. Generated by mcuforge: do not edit. */\n"
    )
    header = f"{note}#ifndef {guard}\n#define {guard}\n\n{array_declaration(symbol)}\n\n#endif /* {guard} */\n"
    source = f'{note}#include "{symbol}.h"\n\n{array_definition(symbol, data, language="c99")}\n'
    out_dir = Path(out_dir)
    return write_text_atomic(out_dir / f"{symbol}.c", source), write_text_atomic(out_dir / f"{symbol}.h", header)


def comparison_markdown(engine_report, estimate: NpuEstimate) -> str:
    """The Cortex-M engine's figures (deploy.report.ModelReport) beside Vela's for the same model."""
    ram = estimate.sram_bytes + estimate.dram_bytes
    flash = estimate.off_chip_flash_bytes + estimate.on_chip_flash_bytes
    return (
        f"## Cortex-M (TFLM) beside Ethos-U ({estimate.accelerator})\n\n"
        "| figure | Cortex-M engine | Ethos-U NPU |\n|---|---:|---:|\n"
        f"| flash (B) | {engine_report.flash_bytes:,} (model) | {flash:,} (Vela: weights, command stream) |\n"
        f"| working RAM (B) | {engine_report.arena_measured_bytes:,} (TFLM arena) | {ram:,} (Vela SRAM/DRAM) |\n"
        f"| MACs per inference | {engine_report.macs:,} | {estimate.macs:,} |\n"
        f"| NPU cycles | - | {estimate.npu_cycles:,} |\n"
        f"| TFLite ops on the CPU | {len(engine_report.layers)} | {estimate.cpu_ops} |\n\n"
        + estimate.markdown()
    )
