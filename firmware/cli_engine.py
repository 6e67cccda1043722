"""`mcuforge engine run | stats`: the C engine on the host, a thin shell over mcuforge.firmware.engine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

MODEL_ARG = typer.Argument(..., help="an int8 or float32 .tflite model")


def register(app: typer.Typer) -> None:
    engine_app = typer.Typer(help="Run models on mcuforge's own C99 engine (int8 and float32, host build).", no_args_is_help=True)
    app.add_typer(engine_app, name="engine")

    @engine_app.command("run")
    def run_command(
        model: Path = MODEL_ARG,
        input: Path = typer.Option(..., "--input", help=".npy input: int arrays as they are, floats quantized"),
        output: Optional[Path] = typer.Option(None, "--output", help="write the raw output 0 here (.npy)"),
    ) -> None:
        """Run MODEL on the input samples in the engine, one by one (as `mcuforge emulate` does in TFLM)."""
        import numpy as np

        from mcuforge.firmware.engine import run_model

        result = run_model(model, input, output)
        for i, row in enumerate(result.outputs):
            typer.echo(f"{i}: {np.array2string(row.ravel(), threshold=16)}")
        if result.output_path is not None:
            typer.echo(f"wrote {result.output_path}")

    @engine_app.command("stats")
    def stats_command(model: Path = MODEL_ARG) -> None:
        """Print JSON: the engine's arena bytes, TFLM's arena for the same model, and the op list."""
        from mcuforge.firmware.engine import model_stats

        typer.echo(model_stats(model).to_json())
