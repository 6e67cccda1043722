"""The keyword features' frame stride probed on the validation split: fewer frames against accuracy.

Runs on demand (each probe trains a keywords model for the spec's epochs: several minutes each):

    nice .venv/bin/python bench/keywords_frame_stride.py [--spec specs/keywords.yaml] [--strides 20 30 40]
        [--models pick unstrided] [--count] [--out build/bench/keywords_frame_stride.json]

Each probe trains one searched architecture (`pick`: the keywords search's 0.49x pick, stem 48
(10x4, stride 2) then 48, 48, 48 (stride 2), 48; `unstrided`: stem 48 (stride 2) then four
unstrided 48-channel blocks; `stem1`: stem 48 (10x4, stride 1), then 48 (stride 2), 48, 48, 48:
the coarser frames' time resolution kept through the stem) on the spec's data at one `frame_stride_ms` (a 1 s clip gives
1 + (16000 - 480) / (16 x stride) frames: 49, 33, 25), exactly as the train stage trains (the
spec's train section), converts it to int8 as deploy does and scores it through TFLM on the
validation split, never the test split. Costs come from the search's `candidate_cost` on the
model's real input shape (instructions predicted by the fitted cost model; arena and flash of the
prepared image, exact); with --count the instructions are also counted under QEMU. Finished
probes are kept in --out and not run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from mcuforge.artifacts import write_json_atomic
from mcuforge.spec import ModelSpec, load_spec

MODELS = {
    "pick": {"channels": [48, 48, 48, 48], "strides": [1, 1, 2, 1]},
    "unstrided": {"channels": [48, 48, 48, 48], "strides": [1, 1, 1, 1]},
    "stem1": {"stem_stride": 1, "channels": [48, 48, 48, 48], "strides": [2, 1, 1, 1]},
}


def model_section(name: str) -> ModelSpec:
    blocks = MODELS[name]
    options = {"stem_channels": 48, "stem_kernel": [10, 4], "stem_stride": 2, "kernels": [3] * len(blocks["channels"]), **blocks}
    return ModelSpec(arch="separable_cnn", width=1.0, options=options)


def predicted(spec, model: str, stride_ms: int) -> int:
    """The probe's predicted instructions, untrained (to choose what to train)."""
    from mcuforge.train.trainer import build_model

    probe_spec, target, dataset, representative = prepared(spec, model, stride_ms)
    return target.candidate_cost(build_model(probe_spec, dataset), representative).instructions


def prepared(spec, model: str, stride_ms: int):
    """The probe's spec, search target, data set and representative inputs."""
    from mcuforge.pipeline import search_target
    from mcuforge.train.trainer import load_dataset

    probe_spec = dataclasses.replace(
        spec, model=model_section(model), data=dataclasses.replace(spec.data, options={**spec.data.options, "frame_stride_ms": stride_ms})
    )
    target = search_target(probe_spec)
    dataset = load_dataset(probe_spec)
    return probe_spec, target, dataset, target.representative_sample(dataset.x_train)


def probe(spec, model: str, stride_ms: int) -> dict:
    """Train, score and cost one architecture at one frame stride."""
    from mcuforge.train.trainer import build_model, fit

    started = time.perf_counter()
    probe_spec, target, dataset, representative = prepared(spec, model, stride_ms)
    cost = target.candidate_cost(build_model(probe_spec, dataset), representative)
    trained = build_model(probe_spec, dataset)
    fit(trained, probe_spec, dataset)
    accuracy = target.int8_accuracy(trained, representative, dataset.x_val, dataset.y_val)
    return {
        "model": model,
        "frame_stride_ms": stride_ms,
        "input_shape": list(dataset.input_shape),
        "val_accuracy_int8": round(float(accuracy), 4),
        "instructions_predicted": cost.instructions,
        "instructions_counted": None,
        "arena_bytes": cost.arena_bytes,
        "flash_bytes": cost.flash_bytes,
        "seconds": round(time.perf_counter() - started, 1),
    }


def counted(spec, model: str, stride_ms: int, scratch: Path) -> int:
    """The probe's instructions per inference counted under QEMU (the untrained model: the count does not depend on weights)."""
    from mcuforge.train.trainer import build_model

    probe_spec, target, dataset, representative = prepared(spec, model, stride_ms)
    return target.reference_cost(build_model(probe_spec, dataset), representative, scratch / f"{model}-{stride_ms}").instructions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/keywords.yaml")
    parser.add_argument("--strides", type=int, nargs="+", default=[20, 30, 40], help="frame_stride_ms values to probe")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["pick", "unstrided"])
    parser.add_argument("--count", action="store_true", help="also count the instructions under QEMU")
    parser.add_argument("--out", type=Path, default=Path("build/bench/keywords_frame_stride.json"))
    args = parser.parse_args()

    spec = load_spec(args.spec)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for stride_ms in args.strides:
        for model in args.models:
            key = f"{model}@{stride_ms}ms"
            if key not in results:
                results[key] = probe(spec, model, stride_ms)
            if args.count and results[key]["instructions_counted"] is None:
                results[key]["instructions_counted"] = counted(spec, model, stride_ms, args.out.parent / "keywords_frame_stride")
            write_json_atomic(args.out, results)
            print(json.dumps(results[key]), flush=True)
    print("| model | frame stride | frames | int8 val accuracy | instructions (predicted) | counted | arena B | flash B |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in results.values():
        count = f"{row['instructions_counted']:,}" if row["instructions_counted"] else "-"
        print(f"| {row['model']} | {row['frame_stride_ms']} ms | {row['input_shape'][0]} | {row['val_accuracy_int8']:.4f} | "
              f"{row['instructions_predicted']:,} | {count} | {row['arena_bytes']:,} | {row['flash_bytes']:,} |")


if __name__ == "__main__":
    main()
