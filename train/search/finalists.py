"""The final selection: the rule's best few candidates trained again as the final model will be, then picked again.

A candidate's search score comes from `search.epochs` of training (3 by default), and that
ranks badly what a candidate reaches after the full final training (keywords: the 3-epoch
pick scored 2 points below the hand-made DS-CNN after 30 epochs). So the top
`search.finalists` of the trials the rule may pick (front.eligible, by search score; one
per architecture) are trained again the way the train stage trains the chosen model (its
seed, optimizer and schedule) for `search.finalist_epochs` (by default the train
section's epochs), converted to int8 and scored through TFLM on the validation split,
never the test split; the rule then picks among them by that score.

With `search.finalist_pool` above `finalists`, one rung of successive halving comes
first: the top `finalist_pool` are trained the same way for a third of the final epochs
(screen_epochs) and scored likewise, and only the best `finalists` of them by that score
get the final training. A few epochs rank candidates poorly for the final training
(keywords: the three 3-epoch leaders finished in the reverse order after 30): the pool
is ranked on a training nearer the final one, at a third of its cost per candidate.

When the finalists' training is no longer than the search's, it would repeat the
search's own (same seed, same epochs): the search scores stand. Each finalist's score
is kept in the study (a study attribute per trial and epochs), so a resumed search, or
one run again with another rule, does not train it again.

Measured against the reference (within_reference), the finalists' instructions are then
counted under QEMU as the reference's are (counted_finalists): the search screens
candidates by the fitted cost model, which errs by a few per cent, and a pick held to a
share of the reference's instructions must hold by the count (keywords: a MobileNet pick
predicted under 0.5x counted 0.51x). A finalist over the bound by the count is not picked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mcuforge.config import parse_dataclass
from mcuforge.progress import Progress
from mcuforge.spec import ModelSpec, Spec
from mcuforge.train.search.front import TrialRow, eligible
from mcuforge.train.search.target import CandidateCost, DeployTarget


def finalist_epochs(spec: Spec) -> int:
    return spec.search.finalist_epochs or spec.train.epochs


def screen_epochs(spec: Spec) -> int:
    """The finalist pool's training: a third of the final one, and longer than the search's."""
    return max(spec.search.epochs + 1, finalist_epochs(spec) // 3)


def finalists(rows: list[TrialRow], spec: Spec, reference: CandidateCost | None, count: int | None = None) -> list[TrialRow]:
    """The trials to train again: the first `count` (default `search.finalists`) distinct architectures the rule may
    pick, by search score (none when the finalists' training would be the search's own)."""
    count = spec.search.finalists if count is None else count
    if finalist_epochs(spec) <= spec.search.epochs:
        return []
    chosen: dict[str, TrialRow] = {}
    for row in eligible(rows, spec.search, reference):
        if len(chosen) == count:
            break
        chosen.setdefault(row.architecture, row)
    return list(chosen.values())


def score_finalists(spec: Spec, study, rows: list[TrialRow], reference: CandidateCost | None, target: DeployTarget,
                    progress: Progress) -> list[TrialRow]:
    """`rows` with each finalist's final_accuracy: trained again (or read back from the study) and scored int8 on
    the validation split; with a finalist pool, its screen_accuracy first, and the final training for the best."""
    pool = finalists(rows, spec, reference, max(spec.search.finalist_pool, spec.search.finalists))
    screened = {}
    if 0 < spec.search.finalists < len(pool) and screen_epochs(spec) < finalist_epochs(spec):
        screened = {row.number: scored(spec, study, row, screen_epochs(spec), target, progress) for row in pool}
        pool = sorted(pool, key=lambda row: -screened[row.number])[: spec.search.finalists]  # stable: search rank on a tie
    final = {row.number: scored(spec, study, row, finalist_epochs(spec), target, progress) for row in pool[: spec.search.finalists]}
    return [dataclasses.replace(row, screen_accuracy=screened.get(row.number), final_accuracy=final.get(row.number)) for row in rows]


def scored(spec: Spec, study, row: TrialRow, epochs: int, target: DeployTarget, progress: Progress) -> float:
    """The trial's int8 validation accuracy after `epochs` of the final training, kept in the study (trained once)."""
    key = f"finalist:{row.number}:{epochs}"
    if key not in study.user_attrs:
        accuracy = train_and_score(spec, row, epochs, target)
        study.set_user_attr(key, accuracy)
        progress.line(f"finalist trial {row.number}: {row.architecture}: int8 val accuracy {accuracy:.4f} after {epochs} epochs "
                      f"({row.accuracy:.4f} after the search's {spec.search.epochs})")
    return study.user_attrs[key]


def counted_finalists(spec: Spec, study, rows: list[TrialRow], target: DeployTarget, directory: Path) -> list[TrialRow]:
    """`rows` with each finalist's instructions counted under QEMU (untrained, as the reference is; kept in the study)."""
    return [dataclasses.replace(row, instructions=counted(spec, study, row, target, directory)) if row.final_accuracy is not None else row
            for row in rows]


def counted(spec: Spec, study, row: TrialRow, target: DeployTarget, directory: Path) -> int:
    key = f"counted_instructions:{row.number}"
    if key not in study.user_attrs:
        _, dataset, model = built(spec, row, spec.train.epochs)
        cost = target.reference_cost(model, target.representative_sample(dataset.x_train), Path(directory) / f"trial{row.number}")
        study.set_user_attr(key, cost.instructions)
    return study.user_attrs[key]


def built(spec: Spec, row: TrialRow, epochs: int):
    """The spec as the final training of the trial's model, its data set, and the model (untrained)."""
    from mcuforge.train.search.space import data_with, searched_data
    from mcuforge.train.trainer import build_model, load_dataset

    final = dataclasses.replace(
        spec,
        model=parse_dataclass(ModelSpec, row.model, f"trial {row.number}'s model"),
        data=data_with(spec.data, searched_data(row.num_mfcc, row.frame_stride_ms)),
        train=dataclasses.replace(spec.train, epochs=epochs),
    )
    dataset = load_dataset(final)
    return final, dataset, build_model(final, dataset)


def train_and_score(spec: Spec, row: TrialRow, epochs: int, target: DeployTarget) -> float:
    """Train the trial's model as the train stage would (for `epochs`); its int8 TFLM accuracy on the validation split."""
    from mcuforge.train.trainer import fit

    final, dataset, model = built(spec, row, epochs)
    fit(model, final, dataset)
    return target.int8_accuracy(model, target.representative_sample(dataset.x_train), dataset.x_val, dataset.y_val)
