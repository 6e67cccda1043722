"""`mcuforge data` and `mcuforge train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("data")
    def data_command(spec: Path = typer.Argument(..., help="pipeline spec (YAML)")) -> None:
        """Print a summary of the spec's data set: shapes, classes, counts per split."""
        from mcuforge.spec import load_spec
        from mcuforge.train.trainer import check_spec, load_dataset

        loaded = load_spec(spec)
        check_spec(loaded)
        summary = load_dataset(loaded).summary()
        typer.echo(json.dumps(summary, indent=2))

    @app.command("train")
    def train_command(
        spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
        out: Optional[Path] = typer.Option(None, help="output directory [default: build/<name>/train]"),
    ) -> None:
        """Train the spec's model; write model, metrics.json, history and training.png atomically."""
        from mcuforge.progress import Progress
        from mcuforge.spec import load_spec
        from mcuforge.train.trainer import train

        loaded = load_spec(spec)
        directory = out or loaded.layout().train
        result = train(loaded, directory, progress=Progress.to())
        typer.echo(json.dumps(result.metrics["test"], indent=2))
        typer.echo(f"wrote {directory}")
