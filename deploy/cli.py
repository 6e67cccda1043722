"""`mcuforge convert | export | emulate | evaluate | golden | report`: thin shells over deploy/'s library."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

SPEC_ARG = typer.Argument(..., help="pipeline spec (YAML)")
MODEL_ARG = typer.Argument(..., help="a .tflite model")


def _console():
    from rich.console import Console

    return Console()


def register(app: typer.Typer) -> None:
    @app.command("convert")
    def convert_command(spec: Path = SPEC_ARG) -> None:
        """Convert the spec's trained (or compressed) model to build/<name>/deploy/model_int8.tflite."""
        from mcuforge.deploy.convert import convert
        from mcuforge.spec import load_spec
        from mcuforge.train.trainer import check_spec

        loaded = load_spec(spec)
        check_spec(loaded)
        result = convert(loaded)
        typer.echo(
            f"wrote {result.model_path} ({result.size} bytes, {result.quantization}, {result.io_type} I/O, "
            f"{'quantization-aware' if result.quantization_aware else 'calibrated'}; ops {', '.join(result.ops)}; "
            + (f"TFLM arena {result.arena.total} bytes)" if result.arena else "LCE ops: no TFLM arena, see `mcuforge engine stats`)")
        )

    @app.command("export")
    def export_command(
        model: Path = MODEL_ARG,
        out: Path = typer.Option(..., help="directory for the C++ source set"),
        name: Optional[str] = typer.Option(None, help="C identifier for the symbols [default: the file's stem]"),
        labels: Optional[Path] = typer.Option(None, help="class labels, one a line [default: labels.txt beside the model]"),
        target: Optional[str] = typer.Option(None, help="refuse a model that exceeds this target's flash or RAM"),
    ) -> None:
        """Write NAME_model_data.h/.cc, NAME_model_settings.h, NAME_op_resolver.h and a README for TFLM projects."""
        from mcuforge.deploy.export import export

        result = export(model, out, name, labels, target)
        typer.echo(f"wrote {', '.join(result.files)} to {result.directory} (arena {result.arena_size} bytes; ops {', '.join(result.ops)})")

    @app.command("emulate")
    def emulate_command(
        model: Path = MODEL_ARG,
        input: Path = typer.Option(..., "--input", help=".npy input: int arrays as they are, floats quantized"),
        output: Optional[Path] = typer.Option(None, help="write the raw output tensor here (.npy)"),
        labels: Optional[Path] = typer.Option(None, help="class labels, one a line [default: labels.txt beside the model]"),
        top: int = typer.Option(3, min=1, help="classes shown per sample for classifiers"),
    ) -> None:
        """Run MODEL on the input samples in the TFLM host interpreter, one by one."""
        import numpy as np

        from mcuforge.deploy.emulate import emulate

        result = emulate(model, input, output, labels, top)
        for i, values in enumerate(result.values):
            if result.top_k is not None:
                typer.echo(f"{i}: " + ", ".join(f"{label} {score:.4f}" for label, score in result.top_k[i]))
            else:
                typer.echo(f"{i}: {np.array2string(values.ravel(), precision=4, threshold=16)}")
        if result.output_path is not None:
            typer.echo(f"wrote {result.output_path}")

    @app.command("evaluate")
    def evaluate_command(spec: Path = SPEC_ARG) -> None:
        """Score the converted model on the test split in TFLM, beside float Keras and LiteRT."""
        from mcuforge.deploy.evaluate import evaluate
        from mcuforge.spec import load_spec
        from mcuforge.train.trainer import check_spec

        loaded = load_spec(spec)
        check_spec(loaded)
        r = evaluate(loaded)
        typer.echo(f"{r.metric} on {r.samples} test samples: TFLM int8 {r.tflm:.4f}, float Keras {r.float_keras:.4f} (drop {r.drop:+.4f})")
        for name, extra in r.extra.items():
            typer.echo(f"{r.metric} on {extra.samples} {name} samples: TFLM int8 {extra.tflm:.4f}, float Keras {extra.float_keras:.4f}")
        for what, a in (("LiteRT", r.litert), ("LiteRT reference kernels", r.litert_reference)):
            predictions = "" if a.differing_predictions is None else f", {a.differing_predictions} predictions differ"
            typer.echo(f"{what} vs TFLM: {a.differing_elements} of {a.elements} outputs differ (max {a.max_abs_difference:g}){predictions}")

    golden = typer.Typer(help="Golden regression vectors: record TFLM's outputs, verify them byte for byte.", no_args_is_help=True)
    app.add_typer(golden, name="golden")

    @golden.command("record")
    def golden_record(
        model: Path = MODEL_ARG,
        dir: Optional[Path] = typer.Option(None, "--dir", help="golden directory [default: MODEL.golden beside it]"),
        input: Optional[Path] = typer.Option(None, "--input", help=".npy inputs [default: seeded random samples]"),
        count: int = typer.Option(4, min=1, help="random samples when no --input"),
        seed: int = typer.Option(0, min=0),
    ) -> None:
        """Store inputs and TFLM's outputs for MODEL."""
        from mcuforge.deploy.golden import record

        result = record(model, dir, input, count, seed)
        typer.echo(f"recorded {result.samples} samples in {result.directory}")

    @golden.command("verify")
    def golden_verify(
        model: Path = MODEL_ARG,
        dir: Optional[Path] = typer.Option(None, "--dir", help="golden directory [default: MODEL.golden beside it]"),
    ) -> None:
        """Rerun the stored inputs; fail on any changed output byte."""
        from mcuforge.deploy.golden import verify

        result = verify(model, dir)
        typer.echo(f"{result.samples} samples match {result.directory}")

    @app.command("report")
    def report_command(
        model: Path = MODEL_ARG,
        target: Optional[str] = typer.Option(None, help="check flash and RAM against a target in deploy/targets"),
        out: Path = typer.Option(Path("."), help="directory for MODEL_report.md and .json"),
    ) -> None:
        """Per-layer table (op, shapes, params, MACs, bytes) and totals; fails when MODEL exceeds --target."""
        from rich.markdown import Markdown

        from mcuforge.deploy.report import build_report, write_report
        from mcuforge.deploy.targets import Fit, load_target

        report = build_report(model, target)
        paths = write_report(report, out)
        _console().print(Markdown(report.markdown()))
        typer.echo(f"wrote {paths[0]} and {paths[1]}")
        if target is not None:
            Fit(load_target(target), report.flash_bytes, report.arena_bytes).check()
