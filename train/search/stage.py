"""The search stage: check the spec can have a candidate at all, run the study, write the front, return the choice."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from mcuforge.config import parse_dataclass
from mcuforge.errors import MCUForgeError
from mcuforge.progress import Progress
from mcuforge.results import SearchResult
from mcuforge.spec import ModelSpec, Spec
from mcuforge.train.search.target import CandidateCost, DeployTarget


def check_smallest_fits(spec: Spec, target: DeployTarget) -> None:
    """Before anything trains: the data set must be a classifier's, and the space's cheapest candidate within budget.

    (With select within_reference the spec's own model is measured before that too: reference_cost.)
    """
    from mcuforge.train.datasets import ANOMALY, parse_options
    from mcuforge.train.search import space
    from mcuforge.train.search.study import Budgets
    from mcuforge.train.trainer import load_dataset

    smallest = space.smallest(spec.search.space)
    dataset = load_dataset(spec)
    if dataset.task == ANOMALY:
        raise MCUForgeError(f"search: {spec.data.dataset} is an anomaly data set; architecture search scores classifiers only")
    if smallest.num_mfcc is not None and not str(dataset.notes.get("features", "")).startswith("mfcc"):
        raise MCUForgeError(
            f"search.space.num_mfcc: {spec.data.dataset} with these options has no MFCC features to choose coefficients of: "
            "remove num_mfcc from the space (it applies to keywords and wav_folder with features: mfcc)"
        )
    if smallest.frame_stride_ms is not None and not hasattr(parse_options(spec.data.dataset, spec.data.options), "frame_stride_ms"):
        raise MCUForgeError(
            f"search.space.frame_stride_ms: {spec.data.dataset} has no audio feature frames to choose the stride of: "
            "remove frame_stride_ms from the space (it applies to keywords and wav_folder)"
        )
    if smallest.data_options():
        dataset = load_dataset(dataclasses.replace(spec, data=space.data_with(spec.data, smallest.data_options())))
    model = space.build(smallest, spec.search, dataset.input_shape, dataset.num_classes, spec.train.seed)
    cost = target.candidate_cost(model, target.representative_sample(dataset.x_train))
    over = Budgets.of(spec.search, target).exceeded(cost)
    if over:
        raise MCUForgeError(
            f"search: no candidate fits the budget: the smallest ({smallest.describe()}) needs flash {cost.flash_bytes} B, "
            f"arena {cost.arena_bytes} B and {cost.instructions} instructions ({'; '.join(over)}): "
            "raise search.max_flash_bytes, max_arena_bytes or max_instructions, or allow smaller choices in search.space"
        )


def reference_cost(spec: Spec, target: DeployTarget, directory: Path) -> CandidateCost:
    """The spec's own model section (the hand-made model the search should beat), untrained, measured on the target
    as the firmware runs it: prepared image, planner arena and instructions counted under QEMU (in `directory`)."""
    from mcuforge.train.trainer import build_model, load_dataset

    dataset = load_dataset(spec)
    model = build_model(spec, dataset)
    return target.reference_cost(model, target.representative_sample(dataset.x_train), directory)


def bounded_by_reference(spec: Spec, reference: CandidateCost) -> Spec:
    """`spec` with its instruction budget at `search.reference_instructions` of the reference's (when below 1), so
    candidates over what the choice may cost are rejected untrained."""
    if spec.search.reference_instructions >= 1:
        return spec
    bound = int(spec.search.reference_instructions * reference.instructions)
    budget = bound if spec.search.max_instructions is None else min(bound, spec.search.max_instructions)
    return dataclasses.replace(spec, search=dataclasses.replace(spec.search, max_instructions=budget))


def seed_study(spec: Spec, study_directory: Path, target: DeployTarget, reference: CandidateCost, progress: Progress) -> None:
    """Queue the seed candidates (train/search/seeds.py) in a study that has no trial yet."""
    from mcuforge.train.search import space
    from mcuforge.train.search.seeds import seed_candidates
    from mcuforge.train.search.study import Budgets, open_study, queue_seed

    study, _ = open_study(spec, study_directory)
    if not spec.search.seeds or study.get_trials(deepcopy=False):
        return
    budgets = Budgets.of(spec.search, target)
    bound = CandidateCost(
        flash_bytes=min(reference.flash_bytes, budgets.flash_bytes),
        arena_bytes=min(reference.arena_bytes, budgets.arena_bytes),
        instructions=min(reference.instructions, budgets.instructions or reference.instructions),
        macs=reference.macs,
    )
    for candidate in seed_candidates(spec, target, bound, progress):
        queue_seed(study, space.params(candidate, spec.search.space))


def search(spec: Spec, directory: Path, study_directory: Path, target: DeployTarget, progress: Progress | None = None) -> SearchResult:
    """Run (or resume) the spec's search on `target` with its study in `study_directory`; write the front into `directory`."""
    from mcuforge.train.search.finalists import counted_finalists, finalist_epochs, score_finalists
    from mcuforge.train.search.front import choose, trial_rows, write_front
    from mcuforge.train.search.study import open_study, run_search, storage_description, study_name

    if spec.search is None:
        raise MCUForgeError(f"spec {spec.name!r} has no search section: add one (see specs/digits_search.yaml)")
    progress = progress or Progress.quiet()
    started = time.perf_counter()
    check_smallest_fits(spec, target)
    reference = None
    if spec.search.select == "within_reference":
        reference = reference_cost(spec, target, Path(study_directory) / "reference")
        progress.line(
            f"reference {spec.model.arch}: {reference.instructions} instructions (QEMU), arena {reference.arena_bytes} B, "
            f"flash {reference.flash_bytes} B: the choice may cost no more"
        )
        spec = bounded_by_reference(spec, reference)
        seed_study(spec, study_directory, target, reference, progress)
    run_search(spec, study_directory, target, progress)
    study, _ = open_study(spec, study_directory)
    rows = score_finalists(spec, study, trial_rows(study), reference, target, progress)
    if reference is not None:
        rows = counted_finalists(spec, study, rows, target, Path(study_directory) / "finalists")
    chosen = choose(rows, spec.search, reference)
    scored = sum(row.final_accuracy is not None for row in rows)
    model = parse_dataclass(ModelSpec, chosen.model, "chosen model")
    result = SearchResult(
        study=study_name(spec),
        storage=storage_description(spec.search, study_directory),
        trials=len(rows),
        complete=sum(row.state == "complete" for row in rows),
        pruned=sum(row.state == "pruned" for row in rows),
        rejected=sum(row.state == "rejected" for row in rows),
        failed=sum(row.state == "failed" for row in rows),
        seconds=round(time.perf_counter() - started, 1),
        chosen_trial=chosen.number,
        chosen_model=model,
        accuracy=chosen.accuracy,
        flash_bytes=chosen.flash_bytes,
        arena_bytes=chosen.arena_bytes,
        instructions=chosen.instructions,
        reference_instructions=reference and reference.instructions,
        reference_arena_bytes=reference and reference.arena_bytes,
        reference_flash_bytes=reference and reference.flash_bytes,
        chosen_num_mfcc=chosen.num_mfcc,
        chosen_frame_stride_ms=chosen.frame_stride_ms,
        finalists=scored,
        finalist_epochs=finalist_epochs(spec) if scored else None,
        final_accuracy=chosen.final_accuracy,
    )
    write_front(rows, chosen, model, result.study, Path(directory), result, reference, spec.model.arch)
    return result


def with_chosen_model(spec: Spec, result: SearchResult) -> Spec:
    """The spec the later stages run: its model section (and searched data option) replaced by the search's choice."""
    from mcuforge.train.search.space import data_with, searched_data

    data = data_with(spec.data, searched_data(result.chosen_num_mfcc, result.chosen_frame_stride_ms))
    return dataclasses.replace(spec, model=result.chosen_model, data=data)
