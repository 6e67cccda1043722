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
from mcuforge.train.search.space import searched_data
from mcuforge.train.search.target import CandidateCost

COSTS = ("instructions", "arena_bytes", "flash_bytes")


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete, pruned (stopped early), rejected (over a budget, never trained), failed, running, waiting (a retry queued)
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
    num_mfcc: int | None = None  # the keyword features' coefficients, when the space searches them
    frame_stride_ms: int | None = None  # the keyword features' frame stride, when the space searches it
    final_accuracy: float | None = None  # a finalist's int8 TFLM validation accuracy after the finalists' training (finalists.py)
    screen_accuracy: float | None = None  # in a finalist pool: its int8 TFLM validation accuracy after the shorter screening training


def _state(trial) -> str:
    import optuna

    if trial.state == optuna.trial.TrialState.PRUNED:
        return "rejected" if "rejected" in trial.user_attrs else "pruned"
    return {
        optuna.trial.TrialState.COMPLETE: "complete",
        optuna.trial.TrialState.FAIL: "failed",
        optuna.trial.TrialState.WAITING: "waiting",
    }.get(trial.state, "running")


def _note(trial, retried_as: int | None) -> str:
    from mcuforge.train.search.study import is_seed

    note = _outcome(trial, retried_as)
    if is_seed(trial):
        return f"seed; {note}" if note else "seed"
    return note


def _outcome(trial, retried_as: int | None) -> str:
    attrs = trial.user_attrs
    if retried_as is not None:
        return f"{trial.system_attrs.get('fail_reason', 'its worker stopped (no heartbeat)')}; retried as trial {retried_as}"
    if trial.system_attrs.get("retry_history"):
        return f"retry of trial {trial.system_attrs['retry_history'][-1]}"
    if "rejected" in attrs:
        return f"over budget: {attrs['rejected']}"
    if "pruned_after_epochs" in attrs:
        return f"pruned after {attrs['pruned_after_epochs']} epochs"
    if "same_as" in attrs:
        return f"same model as trial {attrs['same_as']}"
    return trial.system_attrs.get("fail_reason", "")


def trial_rows(study) -> list[TrialRow]:
    """Every trial of the study, in order; the front is Optuna's (non-dominated complete trials)."""
    from mcuforge.train.search.study import retries

    front = {trial.number for trial in study.best_trials}
    retried_as = retries(study)
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
                note=_note(trial, retried_as.get(trial.number)),
                on_front=trial.number in front and "same_as" not in attrs,
                model=attrs.get("model", {}),
                num_mfcc=attrs.get("num_mfcc"),
                frame_stride_ms=attrs.get("frame_stride_ms"),
            )
        )
    return rows


def _within(row: TrialRow, reference: CandidateCost) -> bool:
    return all(getattr(row, cost) <= getattr(reference, cost) for cost in COSTS)


def _within_budget(row: TrialRow, search: SearchSpec) -> bool:
    """A finalist counted over the instruction budget (predicted under it during the search) is not picked."""
    return search.max_instructions is None or row.instructions <= search.max_instructions


def eligible(rows: list[TrialRow], search: SearchSpec, reference: CandidateCost | None = None) -> list[TrialRow]:
    """The trials the rule may pick, most accurate (by the search's score) first: the front's, or (within_reference)
    every complete trial within the instruction budget whose instructions, arena and flash are each no more than the
    `reference` model's (with the front over fewer objectives than the three costs, such a trial need not be on the
    front)."""
    if search.select == "within_reference":
        pool = [row for row in rows if row.state == "complete" and _within(row, reference) and _within_budget(row, search)]
        if not pool:
            raise MCUForgeError(
                f"search: no complete trial costs no more than the spec's own model ({reference.instructions} instructions, "
                f"arena {reference.arena_bytes} B, flash {reference.flash_bytes} B; see front.csv): raise search.trials, "
                "allow smaller choices in search.space, or choose search.select most_accurate or fastest_within"
            )
    else:
        pool = [row for row in rows if row.on_front]
        if not pool:
            raise MCUForgeError(
                "search: no trial completed, so there is nothing to choose: raise search.trials or search.minutes, "
                "or loosen the budgets (see front.csv for why each trial stopped)"
            )
    return sorted(pool, key=lambda row: (-row.accuracy, row.instructions, row.number))


def choose(rows: list[TrialRow], search: SearchSpec, reference: CandidateCost | None = None) -> TrialRow:
    """The pick among the eligible trials: the most accurate (fewest instructions on a tie), or (fastest_within) the
    fewest instructions within `within_points` accuracy points of the best. When finalists were trained again
    (rows with a final_accuracy), the pick is among them, by that score."""
    pool = eligible(rows, search, reference)
    finalists = [row for row in pool if row.final_accuracy is not None]
    if finalists:
        pool = finalists

    def score(row: TrialRow) -> float:
        return row.accuracy if row.final_accuracy is None else row.final_accuracy

    if search.select == "fastest_within":
        best = max(score(row) for row in pool)
        pool = [row for row in pool if score(row) >= best - search.within_points / 100 - 1e-12]
        return min(pool, key=lambda row: (row.instructions, -score(row), row.number))
    return min(pool, key=lambda row: (-score(row), row.instructions, row.number))


def _markdown(rows: list[TrialRow], chosen: TrialRow, reference: CandidateCost | None, reference_name: str) -> str:
    lines = [
        "| trial | architecture (stem, then channels k kernel s stride per block) | int8 val accuracy | finalist: after screening → final training "
        "| instructions | arena B | flash B | |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]

    def line(row: TrialRow, mark: str) -> str:
        final = " → ".join(f"{score:.4f}" for score in (row.screen_accuracy, row.final_accuracy) if score is not None)
        if row.screen_accuracy is not None and row.final_accuracy is None:
            final += ", screened out"
        return (f"| {row.number} | {row.architecture} | {row.accuracy:.4f} | {final} | {row.instructions:,} | {row.arena_bytes:,} | "
                f"{row.flash_bytes:,} | {mark} |")

    for row in sorted((r for r in rows if r.on_front), key=lambda r: r.instructions):
        lines.append(line(row, "chosen" if row.number == chosen.number else ""))
    if reference is not None:
        lines.append(
            f"| reference | the spec's own model ({reference_name}), instructions counted under QEMU | (not trained) | "
            f" | {reference.instructions:,} | {reference.arena_bytes:,} | {reference.flash_bytes:,} | bound of the choice |"
        )
    for row in rows:
        if not row.on_front and (row.number == chosen.number or row.final_accuracy is not None or row.screen_accuracy is not None):
            lines.append(line(row, ("chosen, " if row.number == chosen.number else "") + "off the front"))
    counts = {state: sum(r.state == state for r in rows) for state in ("complete", "pruned", "rejected", "failed", "running", "waiting")}
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


def _plot(rows: list[TrialRow], chosen: TrialRow, reference: CandidateCost | None, reference_name: str) -> bytes:
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
        if reference is not None:
            ax.axvline(getattr(reference, cost), color="C2", linestyle="--", label=f"{reference_name} (bound)")
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


def fragment(model: ModelSpec, study: str, trial: int, num_mfcc: int | None = None, frame_stride_ms: int | None = None) -> str:
    """The chosen model section as YAML to paste into a spec (or kept by `mcuforge run` with the search section);
    with searched features, also the data options they need."""
    header = f"# Chosen by architecture search (study {study}, trial {trial}).\n"
    chosen = {"model": asdict(model)}
    options = searched_data(num_mfcc, frame_stride_ms)
    if options:
        header += f"# Merge data.options.{' and data.options.'.join(options)} into the spec's data section.\n"
        chosen["data"] = {"options": options}
    return header + yaml.safe_dump(chosen, sort_keys=False)


def write_front(rows: list[TrialRow], chosen: TrialRow, model: ModelSpec, study: str, directory: Path, files,
                reference: CandidateCost | None = None, reference_name: str = "") -> None:
    """Write the table, plot and fragment named by `files` (a SearchResult) into `directory`; `reference` (the
    spec's own model, named `reference_name`) is drawn as the bound of a within_reference choice."""
    write_text_atomic(directory / files.front_csv, _csv(rows))
    write_text_atomic(directory / files.front_json, json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    write_text_atomic(directory / files.table, _markdown(rows, chosen, reference, reference_name))
    write_bytes_atomic(directory / files.plot, _plot(rows, chosen, reference, reference_name))
    write_text_atomic(directory / files.fragment, fragment(model, study, chosen.number, chosen.num_mfcc, chosen.frame_stride_ms))
