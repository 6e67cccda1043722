"""`mcuforge run`: the whole pipeline on one spec, then report.html."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
        board: str = typer.Option("qemu-m4", help="emulated board the firmware stage builds for and runs"),
        root: Path = typer.Option(Path("build"), help="where build/<name>/ lives"),
    ) -> None:
        """Run train -> compress -> deploy -> firmware (QEMU) -> accelerators -> report.html, reusing unchanged stages."""
        import time

        from rich.console import Console

        from mcuforge.html_report import write_html_report
        from mcuforge.pipeline import check_spec, run_pipeline
        from mcuforge.progress import Progress
        from mcuforge.spec import load_spec

        console = Console(soft_wrap=True)  # one line per stage in a log, however long the path
        loaded = load_spec(spec)
        check_spec(loaded)
        started = time.perf_counter()

        def show(outcome) -> None:
            how = "[dim]reused (inputs unchanged)[/dim]" if outcome.reused else f"[green]done[/green] in {outcome.seconds:.1f} s"
            console.print(f"[bold]{outcome.name:<13}[/bold] {how}  {outcome.directory}")

        console.print(f"[bold]mcuforge run {loaded.name}[/bold]")
        run_pipeline(loaded, root, board, on_stage=show, progress=Progress.to(console.file))
        report = write_html_report(loaded, root)
        console.print(f"report: {report}  (total {time.perf_counter() - started:.1f} s)")
