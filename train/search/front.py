"""The study read back: every trial as a row, the Pareto front, the chosen candidate, and the files that show them.

Files (in the search stage's directory): front.csv and front.json (every trial,
with its state, costs, accuracy and whether it is on the front), front.md (the
front as a table), front.png (accuracy against instructions, arena and flash)
and chosen.yaml (the chosen model section, ready to paste into a spec).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from mcuforge.artifacts import write_bytes_atomic, write_text_atomic
from mcuforge.errors import MCUForgeError
from mcuforge.spec import ModelSpec, SearchSpec

COSTS = ("instructions", "arena_bytes", "flash_bytes")


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete, pruned (stopped early), rejected (over a budget, never trained), failed, running
    architecture: str
    instructions: int | None
    arena_bytes: int | None
    flash_bytes: int | None
    macs: int | None
    accuracy: float | None  # int8 through TFLM on the validation split
    val_float_accuracy: float | None  # the float model after its last epoch
    note: str  # why it was rejected or pruned, or which trial it repeats
    on_front: bool
    model: dict


def _state(trial) -> str:
    import optuna

    if trial.state == optuna.trial.TrialState.PRUNED:
        return "rejected" if "rejected" in trial.user_attrs else "pruned"
    return {
        optuna.trial.TrialState.COMPLETE: "complete",
        optuna.trial.TrialState.FAIL: "failed",
    }.get(trial.state, "running")


def _note(trial) -> str:
    attrs = trial.user_attrs
    if "rejected" in attrs:
        return f"over budget: {attrs['rejected']}"
    if "pruned_after_epochs" in attrs:
        return f"pruned after {attrs['pruned_after_epochs']} epochs"
    if "same_as" in attrs:
        return f"same model as trial {attrs['same_as']}"
    return trial.system_attrs.get("fail_reason", "")


def trial_rows(study) -> list[TrialRow]:
    """Every trial of the study, in order; the front is Optuna's (non-dominated complete trials)."""
    front = {trial.number for trial in study.best_trials}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        rows.append(
            TrialRow(
                number=trial.number,
                state=_state(trial),
                architecture=attrs.get("architecture", ""),
                instructions=attrs.get("instructions"),
                arena_bytes=attrs.get("arena_bytes"),
                flash_bytes=attrs.get("flash_bytes"),
                macs=attrs.get("macs"),
                accuracy=attrs.get("accuracy"),
                val_float_accuracy=attrs.get("val_float_accuracy"),
                note=_note(trial),
                on_front=trial.number in front and "same_as" not in attrs,
                model=attrs.get("model", {}),
            )
        )
    return rows


def choose(rows: list[TrialRow], search: SearchSpec) -> TrialRow:
    """The front's pick: the most accurate (fewest instructions on a tie), or the fewest instructions within
    `within_points` accuracy points of the best."""
    front = [row for row in rows if row.on_front]
    if not front:
        raise MCUForgeError(
            "search: no trial completed, so there is nothing to choose: raise search.trials or search.minutes, "
            "or loosen the budgets (see front.csv for why each trial stopped)"
        )
    best = max(row.accuracy for row in front)
    if search.select == "fastest_within":
        eligible = [row for row in front if row.accuracy >= best - search.within_points / 100 - 1e-12]
        return min(eligible, key=lambda row: (row.instructions, -row.accuracy, row.number))
    return min(front, key=lambda row: (-row.accuracy, row.instructions, row.number))


def _markdown(rows: list[TrialRow], chosen: TrialRow) -> str:
    lines = [
        "| trial | architecture (stem, then channels k kernel s stride per block) | int8 val accuracy | instructions | arena B | flash B | |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in sorted((r for r in rows if r.on_front), key=lambda r: r.instructions):
        mark = "chosen" if row.number == chosen.number else ""
        lines.append(
            f"| {row.number} | {row.architecture} | {row.accuracy:.4f} | {row.instructions:,} | {row.arena_bytes:,} | {row.flash_bytes:,} | {mark} |"
        )
    counts = {state: sum(r.state == state for r in rows) for state in ("complete", "pruned", "rejected", "failed", "running")}
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return "\n".join(lines) + f"\n\n{len(rows)} trials: {summary}.\n"


def _csv(rows: list[TrialRow]) -> str:
    out = io.StringIO()
    names = [name for name in TrialRow.__dataclass_fields__ if name != "model"]
    writer = csv.DictWriter(out, names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: getattr(row, name) for name in names})
    return out.getvalue()


def _plot(rows: list[TrialRow], chosen: TrialRow) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"instructions": "instructions per inference", "arena_bytes": "tensor arena (bytes)", "flash_bytes": "model flash (bytes)"}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    complete = [r for r in rows if r.state == "complete"]
    front = sorted((r for r in complete if r.on_front), key=lambda r: r.instructions)
    for ax, cost in zip(axes, COSTS):
        ax.scatter([getattr(r, cost) for r in complete], [r.accuracy for r in complete], s=14, color="0.6", label="trials")
        ax.scatter([getattr(r, cost) for r in front], [r.accuracy for r in front], s=24, color="C0", label="Pareto front")
        ax.scatter([getattr(chosen, cost)], [chosen.accuracy], s=90, marker="*", color="C3", label="chosen")
        ax.set_xscale("log")
        ax.set_xlabel(labels[cost])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("int8 validation accuracy (TFLM)")
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, metadata={"Software": None})  # no version stamp: same study, same bytes
    plt.close(fig)
    return out.getvalue()


def fragment(model: ModelSpec, study: str, trial: int) -> str:
    """The chosen model section as YAML to paste into a spec (or kept by `mcuforge run` with the search section)."""
    header = f"# Chosen by architecture search (study {study}, trial {trial}).\n"
    return header + yaml.safe_dump({"model": asdict(model)}, sort_keys=False)


def write_front(rows: list[TrialRow], chosen: TrialRow, model: ModelSpec, study: str, directory: Path, files) -> None:
    """Write the table, plot and fragment named by `files` (a SearchResult) into `directory`."""
    write_text_atomic(directory / files.front_csv, _csv(rows))
    write_text_atomic(directory / files.front_json, json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    write_text_atomic(directory / files.table, _markdown(rows, chosen))
    write_bytes_atomic(directory / files.plot, _plot(rows, chosen))
    write_text_atomic(directory / files.fragment, fragment(model, study, chosen.number))
