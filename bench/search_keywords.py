"""Architecture search against the spec's hand-made model: int8 through TFLM on the test split.

Runs on demand (keywords: the search trains dozens of candidates, then two final models;
an hour or more on two shared cores):

    nice .venv/bin/python bench/search_keywords.py [--spec specs/keywords.yaml] [--target cortex-m4-256k]
        [--trials 30] [--minutes 30] [--search-epochs 4] [--workers 1] [--family ds_cnn] [--finalists 3]
        [--finalist-epochs N] [--finalist-pool N] [--select within_reference] [--seeds 4] [--reference-instructions 0.5]
        [--num-mfcc 8 10 13] [--frame-stride-ms 20 30 40] [--root build/bench-search]

The search uses the spec's `search:` section, or the default one (DS-CNN family for
keywords) when it has none; --trials/--minutes/--search-epochs/--workers/--family/--finalists/
--finalist-epochs/--finalist-pool/--seeds override it, --num-mfcc and --frame-stride-ms give its space the keyword
features' coefficients per frame and frame strides to search (the hand-made model keeps the data section's), and --select (default within_reference: the most accurate
candidate whose instructions, arena and flash are each no more than the hand-made model's, the
instructions times --reference-instructions, default 0.5: the first target's bound, candidates
over it rejected untrained) picks the model: among the finalists (the rule's top candidates trained again for the final
epochs, scored on the validation split) when there are any.
Then the spec's hand-made model and the chosen one are trained the same way (the
spec's train section: same data, same epochs), converted to int8 like deploy does,
and scored by the TFLM host interpreter on the test split (for keywords: speakers
never heard in training). Costs are measured for both the same way the search
measures candidates (prepared image and arena from the host engine), with instructions
per inference counted under QEMU (the target core's board and kernels; Cortex-M0+ code
on qemu-m3, as the cost model's fit does).
Targets (issue 16): the chosen model at least as accurate with <= 0.5x the
instructions and no more arena or flash, or >= 1 point more accurate at no more
cost in any of the three. Also the cost model's error on the chosen model (its predicted
instructions against the QEMU count). Writes <root>/<name>/search_bench.json and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from mcuforge.artifacts import write_json_atomic
from mcuforge.config import parse_dataclass, to_dict
from mcuforge.progress import Progress
from mcuforge.spec import SearchSpace, SearchSpec, load_spec


def measured(spec, root: Path) -> dict:
    """Train and deploy `spec`'s model (reused when unchanged): its int8 TFLM test accuracy, and its costs on
    the target measured on the int8 model (prepared image and arena from the host engine, instructions per
    inference counted under QEMU by qemu-icount: the hand-made models have ops the search's cost model was
    not fitted on)."""
    from mcuforge.firmware.candidate_cost import measured_cost
    from mcuforge.pipeline import STAGES, run_pipeline

    stages = tuple(stage for stage in STAGES if stage.name in ("train", "deploy"))
    deployed = run_pipeline(spec, root, stages=stages).stages[1]
    evaluation = json.loads((deployed.directory / deployed.result.evaluation).read_text())
    cost = measured_cost(deployed.directory / deployed.result.model, spec.deploy.target, root / spec.name / "icount")
    return {
        "arch": spec.model.arch,
        "options": spec.model.options,
        "num_mfcc": spec.data.options.get("num_mfcc"),
        "frame_stride_ms": spec.data.options.get("frame_stride_ms"),
        "test_accuracy_int8": evaluation["tflm"],
        "instructions": cost.instructions,
        "arena_bytes": cost.arena_bytes,
        "flash_bytes": cost.flash_bytes,
    }


def verdict(hand: dict, chosen: dict) -> str:
    """Which of issue 16's two targets the chosen model meets, or by how much it misses the first."""
    costs = ("instructions", "arena_bytes", "flash_bytes")
    gain = 100 * (chosen["test_accuracy_int8"] - hand["test_accuracy_int8"])
    ratio = chosen["instructions"] / hand["instructions"]
    no_more_memory = all(chosen[c] <= hand[c] for c in costs[1:])
    if gain >= 0 and ratio <= 0.5 and no_more_memory:
        return f"met: {gain:+.1f} points at {ratio:.2f}x the instructions, no more arena or flash"
    if gain >= 1 and ratio <= 1 and no_more_memory:
        return f"met: {gain:+.1f} points at no more cost ({ratio:.2f}x the instructions)"
    over = [c for c in costs[1:] if chosen[c] > hand[c]]
    return f"missed: {gain:+.1f} points at {ratio:.2f}x the instructions" + (f", more {' and '.join(over)}" if over else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/keywords.yaml")
    parser.add_argument("--target", help="deploy target [default: the spec's]")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--search-epochs", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--family", choices=("ds_cnn", "mobilenet"))
    parser.add_argument("--finalists", type=int)
    parser.add_argument("--finalist-epochs", type=int)
    parser.add_argument("--finalist-pool", type=int, help="candidates screened for a third of the finalist epochs before the "
                        "best --finalists get the full training [default: the search section's, 0: none]")
    parser.add_argument("--seeds", type=int, help="ladder candidates queued first [default: the search section's, 4]")
    parser.add_argument("--num-mfcc", type=int, nargs="+", help="MFCC coefficients per frame the search may pick [default: the "
                        "search section's; none: the data section's alone]")
    parser.add_argument("--frame-stride-ms", type=int, nargs="+", help="keyword feature frame strides the search may pick "
                        "[default: the search section's; none: the data section's alone]")
    parser.add_argument("--reference-instructions", type=float, default=0.5,
                        help="the share of the hand-made model's instructions the choice may cost [default: 0.5, the first target's]")
    parser.add_argument("--select", default="within_reference", help="the search's selection rule [default: within_reference, "
                        "the most accurate candidate costing no more than the hand-made model]")
    parser.add_argument("--root", type=Path, default=Path("build/bench-search"))
    args = parser.parse_args()

    from mcuforge.pipeline import search_target
    from mcuforge.train.search.stage import search, with_chosen_model

    spec = load_spec(args.spec)
    if args.target:
        spec = dataclasses.replace(spec, deploy=dataclasses.replace(spec.deploy, target=args.target))
    given = {"trials": args.trials, "minutes": args.minutes, "epochs": args.search_epochs, "workers": args.workers, "family": args.family,
             "finalists": args.finalists, "finalist_epochs": args.finalist_epochs, "finalist_pool": args.finalist_pool, "select": args.select,
             "seeds": args.seeds,
             "reference_instructions": args.reference_instructions}
    search_spec = dataclasses.replace(spec.search or SearchSpec(), **{k: v for k, v in given.items() if v is not None})
    features = {"num_mfcc": args.num_mfcc, "frame_stride_ms": args.frame_stride_ms}
    for name, values in features.items():
        if values:
            space = parse_dataclass(SearchSpace, {**to_dict(search_spec.space), name: values}, "--" + name.replace("_", "-"))
            search_spec = dataclasses.replace(search_spec, space=space)
    spec = dataclasses.replace(spec, search=search_spec)
    layout = spec.layout(args.root)
    started = time.perf_counter()
    searched = search(spec, layout.search_result, layout.search, search_target(spec), Progress.to())
    wall = time.perf_counter() - started
    hand_spec = dataclasses.replace(spec, name=f"{spec.name}-hand", search=None)
    chosen_spec = dataclasses.replace(with_chosen_model(spec, searched), name=f"{spec.name}-chosen", search=None)
    hand, chosen = measured(hand_spec, args.root), measured(chosen_spec, args.root)
    record = {
        "spec": args.spec,
        "target": spec.deploy.target,
        "search": dataclasses.asdict(spec.search),
        "search_wall_seconds": round(wall, 1),
        "trials": searched.trials,
        "complete": searched.complete,
        "pruned": searched.pruned,
        "rejected": searched.rejected,
        "failed": searched.failed,
        "final_epochs": spec.train.epochs,
        "chosen_in_search": {"accuracy_val_int8": searched.accuracy, "instructions_predicted": searched.instructions,
                             "arena_bytes": searched.arena_bytes, "flash_bytes": searched.flash_bytes,
                             "finalists": searched.finalists, "finalist_epochs": searched.finalist_epochs,
                             "final_accuracy_val_int8": searched.final_accuracy},
        "cost_model_error": round(searched.instructions / chosen["instructions"] - 1, 4),
        "reference_bound": {"instructions": searched.reference_instructions, "arena_bytes": searched.reference_arena_bytes,
                            "flash_bytes": searched.reference_flash_bytes},
        "hand": hand,
        "chosen": chosen,
        "verdict": verdict(hand, chosen),
    }
    write_json_atomic(layout.base / "search_bench.json", record)
    print(f"{args.spec} on {spec.deploy.target}: search {wall / 60:.1f} min, {searched.trials} trials "
          f"({searched.complete} complete, {searched.pruned} pruned, {searched.rejected} over budget, {searched.failed} failed), "
          f"{searched.finalists} finalists trained {searched.finalist_epochs} epochs; chosen: trial {searched.chosen_trial}, "
          f"int8 val {searched.accuracy:.4f} in the search" + ("" if searched.final_accuracy is None else f", {searched.final_accuracy:.4f} as a finalist"))
    print("| model | int8 test accuracy (TFLM) | instructions | arena B | flash B |")
    print("|---|---:|---:|---:|---:|")
    for name, row in (("hand-made " + hand["arch"], hand), ("searched", chosen)):
        print(f"| {name} | {row['test_accuracy_int8']:.4f} | {row['instructions']:,} | {row['arena_bytes']:,} | {row['flash_bytes']:,} |")
    print(f"cost model: predicted {searched.instructions:,} instructions for the chosen model, {100 * record['cost_model_error']:+.1f} % against the count")
    print(record["verdict"])


if __name__ == "__main__":
    main()
