"""`mcuforge search`: the search stage alone, with the trial budget, workers and storage from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search_command(
        spec: Path = typer.Argument(..., help="pipeline spec (YAML); without a search section the default search runs"),
        workers: Optional[int] = typer.Option(None, min=1, max=64, help="processes on this machine sharing the study"),
        storage: Optional[str] = typer.Option(None, help="Optuna storage URL shared with other machines (default: the journal file build/<name>/search/study.journal)"),
        trials: Optional[int] = typer.Option(None, min=1, help="trials in the study, counting finished ones (resumed runs continue)"),
        minutes: Optional[float] = typer.Option(None, min=0.01, help="wall-clock limit of this run"),
        finalists: Optional[int] = typer.Option(None, min=0, max=64, help="top candidates trained again for the final epochs "
                                                "before the pick (0: pick by the search score)"),
        root: Path = typer.Option(Path("build"), help="where build/<name>/ lives"),
    ) -> None:
        """Search architectures under the target's flash, RAM (and latency) budgets; write the Pareto front and chosen.yaml."""
        import dataclasses

        from rich.console import Console

        from mcuforge.pipeline import STAGES, run_pipeline
        from mcuforge.progress import Progress
        from mcuforge.spec import SearchSpec, load_spec

        loaded = load_spec(spec)
        given = {"workers": workers, "storage": storage, "trials": trials, "minutes": minutes, "finalists": finalists}
        overrides = {key: value for key, value in given.items() if value is not None}
        loaded = dataclasses.replace(loaded, search=dataclasses.replace(loaded.search or SearchSpec(), **overrides))
        console = Console(soft_wrap=True)
        stage = next(stage for stage in STAGES if stage.name == "search")
        outcome = run_pipeline(loaded, root, stages=(stage,), progress=Progress.to(console.file)).stages[0]
        result = outcome.result
        how = "reused (inputs unchanged)" if outcome.reused else f"{outcome.seconds:.1f} s"
        console.print(
            f"search {result.study}: {result.trials} trials ({result.complete} complete, {result.pruned} pruned, "
            f"{result.rejected} over budget, {result.failed} failed), {how}"
        )
        console.print(
            f"chosen: trial {result.chosen_trial}, int8 val accuracy {result.accuracy:.4f}, {result.instructions} instructions, "
            f"arena {result.arena_bytes} B, flash {result.flash_bytes} B"
        )
        if result.finalists:
            console.print(f"the best of {result.finalists} finalists trained again for {result.finalist_epochs} epochs: "
                          f"int8 val accuracy {result.final_accuracy:.4f}")
        if result.reference_instructions is not None:
            console.print(
                f"within the spec's own model ({loaded.model.arch}): {result.reference_instructions} instructions, "
                f"arena {result.reference_arena_bytes} B, flash {result.reference_flash_bytes} B"
            )
        console.print(f"front: {outcome.directory / result.table}  chosen model section: {outcome.directory / result.fragment}")
