"""`mcuforge compress SPEC`: run the spec's compression recipe and print what each step gave."""

from __future__ import annotations

from pathlib import Path

import typer

from mcuforge.results import StepRow

_COLUMNS = (
    ("step", "step", str),
    ("metric", None, "{:.4f}".format),
    ("parameters", "params", "{:,}".format),
    ("nonzero_parameters", "non-zero", "{:,}".format),
    ("macs", "MACs", "{:,}".format),
    ("int8_bytes", "int8 B", "{:,}".format),
    ("compressed_bytes", "LUT B", "{:,}".format),
    ("image_bytes", "engine image B", "{:,}".format),
    ("arena_bytes", "arena B", "{:,}".format),
)


def render_table(rows: list[StepRow], metric: str):
    """The steps as a rich table; the float model's .tflite size goes in the caption."""
    from rich.table import Table

    float_bytes = [row.float_bytes for row in rows if row.float_bytes is not None]
    table = Table(
        title=f"compress: {metric} of the int8 model through TFLM (float row: Keras float)",
        caption=f"float .tflite: {float_bytes[0]:,} B" if float_bytes else None,
    )
    for key, title, _ in _COLUMNS:
        table.add_column(title or metric, justify="left" if key == "step" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*("-" if getattr(row, key) is None else fmt(getattr(row, key)) for key, _, fmt in _COLUMNS))
    return table


def register(app: typer.Typer) -> None:
    @app.command("compress")
    def compress_command(
        spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
        root: Path = typer.Option(Path("build"), help="build root: reads <root>/<name>/train, writes <root>/<name>/compress"),
    ) -> None:
        """Run the spec's compression steps; write model.h5, per-step .tflite, steps.json and pareto.png."""
        from rich.console import Console

        from mcuforge.compress.pipeline import compress
        from mcuforge.progress import Progress
        from mcuforge.spec import load_spec

        console = Console(width=120)
        loaded = load_spec(spec)
        result = compress(loaded, root, Progress.to())
        console.print(render_table(result.rows, result.metric))
        console.print(f"wrote {loaded.layout(root).compress}")
