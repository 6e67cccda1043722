"""`mcuforge edgetpu check|compile|run` and `mcuforge npu compile`: thin shells over deploy/edgetpu*.py and deploy/npu.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer

MODEL_ARG = typer.Argument(..., help="a full-integer .tflite model")
EDGETPU_TARGETS = ("host", "coral-usb", "coral-devboard")


def _default_out(model: Path, stage: str) -> Path:
    return Path("build") / model.stem / stage


def _c_name(model: Path) -> str:
    """The model's stem as a C identifier (hello-world.v2 -> hello_world_v2)."""
    name = re.sub(r"\W", "_", model.stem)
    return f"m_{name}" if name[:1].isdigit() else name


def register(app: typer.Typer) -> None:
    edgetpu_app = typer.Typer(help="Coral Edge TPU: compatibility check, edgetpu_compiler, run.", no_args_is_help=True)
    npu_app = typer.Typer(help="Arm Ethos-U NPUs through Vela.", no_args_is_help=True)
    app.add_typer(edgetpu_app, name="edgetpu")
    app.add_typer(npu_app, name="npu")

    @edgetpu_app.command("check")
    def check_command(
        model: Path = MODEL_ARG,
        min_runtime_version: int = typer.Option(14, help="oldest Edge TPU runtime the model must run on"),
        as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    ) -> None:
        """Which ops can map to the Edge TPU, why not, and where the CPU takes over (Coral's published rules)."""
        from mcuforge.deploy.edgetpu import check_file

        report = check_file(model, min_runtime_version)
        typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.text(), nl=as_json)

    @edgetpu_app.command("compile")
    def compile_command(
        model: Path = MODEL_ARG,
        out: Optional[Path] = typer.Option(None, help="output directory [default: build/<model>/edgetpu]"),
        min_runtime_version: int = typer.Option(14, help="passed to edgetpu_compiler --min_runtime_version"),
        num_segments: int = typer.Option(1, help="split into this many segments for pipelining (--num_segments)"),
        target: Optional[str] = typer.Option(None, help="a deploy target (coral-edgetpu): the report checks its budgets"),
        report: bool = typer.Option(True, help="write the model report with the Edge TPU figures beside the engine's"),
    ) -> None:
        """Check the model, then run edgetpu_compiler (when installed) and write NAME_edgetpu.tflite and its report."""
        from mcuforge.deploy.edgetpu import check_file
        from mcuforge.deploy.edgetpu_compiler import compile_model, report_section

        check = check_file(model, min_runtime_version)
        typer.echo(check.text())
        out = out or _default_out(model, "edgetpu")
        result = compile_model(model, out, min_runtime_version, num_segments)
        written = [Path(path) for path in result.outputs]
        if report:
            from mcuforge.deploy.report import build_report, write_report

            written += write_report(build_report(model, target), out, sections=(report_section(check, result),))
        typer.echo(result.text(), nl=False)
        typer.echo("\n".join(f"wrote {path}" for path in written))

    @edgetpu_app.command("run")
    def run_command(
        model: Path = MODEL_ARG,
        target: str = typer.Option("host", help=f"one of {', '.join(EDGETPU_TARGETS)}"),
        host: Optional[str] = typer.Option(None, help="coral-devboard over ssh: user@address (mendel@192.168.100.2)"),
        via: str = typer.Option("ssh", help="coral-devboard transfer: ssh or mdt"),
        port: int = typer.Option(22, help="ssh port of the Dev Board"),
        cpu_model: Optional[Path] = typer.Option(None, help="the model before edgetpu_compiler, for the CPU fallback"),
        input_npy: Optional[Path] = typer.Option(None, "--input", help=".npy input of the model's dtype and shape [default: zeros]"),
    ) -> None:
        """Run on the Edge TPU (libedgetpu delegate), else on the CPU with a notice; or on a USB Accelerator or Dev Board."""
        from mcuforge.deploy.edgetpu_devboard import run_devboard
        from mcuforge.deploy.edgetpu_host import run_local, run_usb
        from mcuforge.errors import MCUForgeError

        if target == "host":
            result = run_local(model, cpu_model, input_npy)
        elif target == "coral-usb":
            result = run_usb(model, input_npy)
        elif target == "coral-devboard":
            result = run_devboard(model, host, cpu_model, input_npy, via=via, port=port)
        else:
            raise MCUForgeError(f"unknown Edge TPU target {target!r}: expected one of {', '.join(EDGETPU_TARGETS)}")
        if result.notice:
            typer.secho(result.notice, err=True, fg=typer.colors.YELLOW)
        typer.echo(json.dumps({"device": result.device, "outputs": result.outputs, "latency_ms": round(result.latency_ms, 3)}))

    @npu_app.command("compile")
    def npu_compile_command(
        model: Path = MODEL_ARG,
        accelerator: Optional[str] = typer.Option(
            None, help="Vela --accelerator-config, ethos-u55-32 ... ethos-u85-2048 [default: the target's, else ethos-u55-128]"
        ),
        target: Optional[str] = typer.Option(None, help="a deploy target with an Ethos-U (cortex-m55-ethos-u55): the report checks its budgets"),
        out: Optional[Path] = typer.Option(None, help="output directory [default: build/<model>/npu]"),
        board: str = typer.Option("corstone-300", help="board the C array is for: corstone-300 or corstone-310"),
        name: Optional[str] = typer.Option(None, help="C identifier for the array [default: the model's stem]"),
        report: bool = typer.Option(True, help="write the model report with the NPU figures beside the engine's"),
    ) -> None:
        """Compile with Vela; keep the optimized .tflite, Vela's estimates and a C array for a Corstone board."""
        from mcuforge.deploy import npu

        accelerator = accelerator or npu.target_accelerator(target)
        npu.check_board(board, accelerator)  # a wrong board fails before Vela runs
        out = out or _default_out(model, "npu")
        estimate = npu.compile_for_npu(model, out, accelerator)
        written = [Path(estimate.optimized_model), *npu.export_c_array(estimate, out, name or _c_name(model), board)]
        if report:
            from mcuforge.deploy.report import build_report, write_report

            engine = build_report(model, target)
            written += write_report(engine, out, sections=(npu.comparison_markdown(engine, estimate),))
        typer.echo(estimate.markdown())
        typer.echo("\n".join(f"wrote {path}" for path in written))
