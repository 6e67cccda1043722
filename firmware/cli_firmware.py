"""`mcuforge firmware build|run|flash`: Cortex-M images for QEMU targets and real boards."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

_MODEL = typer.Argument(..., help="int8 or float32 .tflite model")
_TARGET = typer.Option("qemu-m4", "--target", "-t", help="board: a firmware/boards/<name>.yaml (qemu-m3/m4/m7/m33/m55, stm32f746g-disco, nrf52840dk, rp2040-pico)")
_INPUT = typer.Option(None, "--input", "-i", help=".npy of test vectors carried in the image [default: one seeded random sample]")
_LABELS = typer.Option(None, help="class labels, one a line [default: labels.txt beside the model]")
_OUT = typer.Option(None, help="output directory [default: build/firmware/<target>]")
_ARENA = typer.Option(None, help="arena bytes [default: the prepared image's; with --interpreter the host engine's measurement plus a margin]")
_INTERPRETER = typer.Option(False, "--interpreter", help="link the interpreter (mf_load of the .tflite at boot) instead of the host-prepared model image")
_KERNELS = typer.Option(None, help="engine kernel set: portable or a firmware/runtime/kernels/<variant> folder [default: the board's]")
_NAME = typer.Option(None, help="image and model name (a C identifier) [default: the model file's stem]")
_TIMEOUT = typer.Option(300.0, help="seconds QEMU may run before the run is declared hung")
_CODE_BUDGET = typer.Option(None, min=0, help="bytes of engine code (the model's kernels at -Os) the prepared image's loops should fit: the fastest loops that fit are taken [default: 8 KB]")


def _build(model: Path, target: str, input: Optional[Path], labels: Optional[Path], out: Optional[Path], arena: Optional[int], kernels: Optional[str], name: Optional[str], interpreter: bool, code_budget: Optional[int]):
    from mcuforge.firmware.build import build_image

    image = build_image(model, target, out_dir=out, inputs=input, labels_path=labels, arena_bytes=arena, kernels=kernels, name=name, prepared=not interpreter, code_budget=code_budget)
    typer.echo(image.size.format())
    if image.engine_loops:
        typer.echo(image.engine_loops)
    typer.echo(f"wrote {image.elf} (+ .bin, .hex, .map{', .uf2' if image.uf2 else ''})")
    return image


def _report(result, board) -> None:
    typer.echo(f"model {result.model}, input {result.input_source}, arena used {result.arena_used:,} bytes")
    # Under QEMU -icount, SysTick counts virtual time: instructions x clock / 1e9, not silicon cycles.
    unit = f"emulated SysTick cycles at {board.clock_hz / 1e6:g} MHz" if board.emulated else "cycles"
    for index, outputs in enumerate(result.outputs):
        tops = ", ".join(f"{label if label != '-' else cls} ({value})" for cls, label, value in result.top[index]) if index < len(result.top) else ""
        values = " | ".join(" ".join(str(v) for v in out.reshape(-1)[:16]) + (" ..." if out.size > 16 else "") for out in outputs)
        cycles = f", {result.cycles[index]:,} {unit}" if index < len(result.cycles) else ""
        typer.echo(f"  vector {index}: [{values}]{' top: ' + tops if tops else ''}{cycles}")


def register(app: typer.Typer) -> None:
    firmware = typer.Typer(help="Cortex-M firmware: build images, run them in QEMU, flash boards.", no_args_is_help=True)
    app.add_typer(firmware, name="firmware")

    @firmware.command("build")
    def build_command(model: Path = _MODEL, target: str = _TARGET, input: Optional[Path] = _INPUT, labels: Optional[Path] = _LABELS, out: Optional[Path] = _OUT, arena: Optional[int] = _ARENA, kernels: Optional[str] = _KERNELS, name: Optional[str] = _NAME, interpreter: bool = _INTERPRETER, code_budget: Optional[int] = _CODE_BUDGET) -> None:
        """Build <out>/<model>.elf, .bin, .hex and .map for the target; print the size report against its limits."""
        _build(model, target, input, labels, out, arena, kernels, name, interpreter, code_budget)

    @firmware.command("run")
    def run_command(model: Path = _MODEL, target: str = _TARGET, input: Optional[Path] = _INPUT, labels: Optional[Path] = _LABELS, out: Optional[Path] = _OUT, arena: Optional[int] = _ARENA, kernels: Optional[str] = _KERNELS, name: Optional[str] = _NAME, interpreter: bool = _INTERPRETER, code_budget: Optional[int] = _CODE_BUDGET, timeout: float = _TIMEOUT) -> None:
        """Build for an emulated target and run it in QEMU: outputs, top-k and cycles per inference."""
        from mcuforge.firmware.qemu import run_qemu

        image = _build(model, target, input, labels, out, arena, kernels, name, interpreter, code_budget)
        _report(run_qemu(image, timeout=timeout), image.board)

    @firmware.command("flash")
    def flash_command(model: Path = _MODEL, target: str = _TARGET, input: Optional[Path] = _INPUT, labels: Optional[Path] = _LABELS, out: Optional[Path] = _OUT, arena: Optional[int] = _ARENA, kernels: Optional[str] = _KERNELS, name: Optional[str] = _NAME, interpreter: bool = _INTERPRETER, code_budget: Optional[int] = _CODE_BUDGET, timeout: float = _TIMEOUT) -> None:
        """Build, then flash a real board (checking tool and probe first) or, for a QEMU target, run it."""
        from mcuforge.firmware.flash import flash_image
        from mcuforge.firmware.qemu import run_qemu

        image = _build(model, target, input, labels, out, arena, kernels, name, interpreter, code_budget)
        if image.board.emulated:
            _report(run_qemu(image, timeout=timeout), image.board)
        else:
            typer.echo(flash_image(image))
