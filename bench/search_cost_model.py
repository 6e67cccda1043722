"""Fit the search's latency cost model on QEMU counts, and measure its error on held-out candidates.

    python bench/search_cost_model.py [--cores cortex-m4 ...] [--train 24] [--held-out 8]   (make search-cost-model)

Random DS-CNN/MobileNet-style candidates (seeded: input shape, stem kernel and
stride, 1-4 depthwise-separable blocks with their kernel, stride and channels)
are converted to int8 with seeded random weights (instruction counts do not
depend on the weights), built for each core's QEMU board with its kernel set
(mcuforge.firmware.candidate_cost.QEMU_BOARD_OF_CPU; Cortex-M0+ code on qemu-m3), and
counted per op with the qemu-icount plugin (bench/engine_icount.py's
breakdown: consecutive marks on the call of each op's eval). The per-op
coefficients are fitted on the training candidates
(mcuforge.firmware.latency_model.fit) and written to
firmware/latency_model.json with the engine digest and the error of the
predicted totals against the measured ones, on the training and on the
held-out candidates, which the table also prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_icount import INVOKE_FUNCTION, per_op_instructions  # noqa: E402
from firmware_icount import REPO  # noqa: E402

from mcuforge.firmware.icount import instructions_per_inference  # noqa: E402

OUT = REPO / "build" / "bench" / "search_cost_model"
# Inputs of the project's data sets: keywords (49 frames x 10 MFCC, and shorter), digits 8x8, small images.
INPUT_SHAPES = [(49, 10, 1), (32, 10, 1), (25, 13, 1), (8, 8, 1), (16, 16, 1), (32, 32, 3)]
STEM_KERNELS = [(3, 3), (5, 3), (10, 4), (1, 1)]
CHANNELS = [4, 8, 12, 16, 24, 32, 48, 64]
DEPTHWISE_KERNELS = [3, 5]


@dataclass(frozen=True)
class Candidate:
    """A DS-CNN/MobileNet-style architecture: a strided stem conv, depthwise-separable blocks, pooling, a dense head."""

    input_shape: tuple[int, int, int]
    stem_kernel: tuple[int, int]
    stem_stride: int
    stem_channels: int
    blocks: tuple[tuple[int, int, int], ...]  # (depthwise kernel, stride, pointwise channels)
    classes: int

    @property
    def name(self) -> str:
        shape = "x".join(map(str, self.input_shape))
        blocks = "_".join(f"{k}s{s}c{c}" for k, s, c in self.blocks)
        return f"in{shape}_stem{self.stem_kernel[0]}x{self.stem_kernel[1]}s{self.stem_stride}c{self.stem_channels}_{blocks}"

    def keras_model(self, seed: int):
        import mcuforge  # noqa: F401  (Keras 2 before TensorFlow)
        import tf_keras

        tf_keras.utils.set_random_seed(seed)
        layers = tf_keras.layers
        inputs = tf_keras.Input(shape=self.input_shape)
        x = layers.Conv2D(self.stem_channels, self.stem_kernel, strides=self.stem_stride, padding="same", activation="relu")(inputs)
        for kernel, stride, channels in self.blocks:
            x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", activation="relu")(x)
            x = layers.Conv2D(channels, 1, activation="relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        outputs = layers.Softmax()(layers.Dense(self.classes)(x))
        return tf_keras.Model(inputs, outputs, name="candidate")


def random_candidate(rng: np.random.Generator) -> Candidate:
    """One architecture of the sampled space; strides stop where the feature map would fall below 2x2."""
    shape = INPUT_SHAPES[rng.integers(len(INPUT_SHAPES))]
    stem_kernel = STEM_KERNELS[rng.integers(len(STEM_KERNELS))]
    stem_stride = int(rng.integers(1, 3))
    size = min(shape[0], shape[1]) // stem_stride
    blocks = []
    for _ in range(int(rng.integers(1, 5))):
        stride = int(rng.integers(1, 3)) if size >= 4 else 1
        size //= stride
        blocks.append((int(rng.choice(DEPTHWISE_KERNELS)), stride, int(rng.choice(CHANNELS))))
    return Candidate(shape, stem_kernel, stem_stride, int(rng.choice(CHANNELS)), tuple(blocks), int(rng.integers(2, 13)))


def candidate_model(candidate: Candidate, seed: int) -> Path:
    """The candidate as int8 .tflite (seeded random weights and calibration data), cached under build/."""
    path = OUT / "models" / f"{candidate.name}_k{candidate.classes}_seed{seed}.tflite"
    if not path.exists():
        from mcuforge.artifacts import write_bytes_atomic
        from mcuforge.deploy.convert import convert_model

        representative = np.random.default_rng(seed).normal(size=(8, *candidate.input_shape)).astype(np.float32)
        write_bytes_atomic(path, convert_model(candidate.keras_model(seed), representative))
    return path


def candidate_models(count: int, seed: int) -> list[Path]:
    """`count` random candidates as int8 .tflite, skipping those the engine refuses, as TFLM does (a softmax
    whose random-weight input scale gives a multiplier below one): their costs cannot be measured."""
    from mcuforge.firmware.engine import EngineError
    from mcuforge.firmware.prepared import prepared_image

    rng = np.random.default_rng(seed)
    models = []
    while len(models) < count:
        path = candidate_model(random_candidate(rng), seed)
        try:
            prepared_image(path.read_bytes(), "portable", str(path))
        except EngineError:
            continue
        models.append(path)
    return models


def measure(model_path: Path, cpu: str, board: str, kernels: str) -> list[int]:
    """Measured instructions of each op of `model_path` on `cpu` (they sum to the instructions per inference).

    Kept under build/ per engine digest, so a refit after changing only the features measures nothing again.
    """
    from mcuforge.artifacts import write_text_atomic
    from mcuforge.firmware.build import build_image
    from mcuforge.firmware.latency_model import engine_digest, op_features

    record = OUT / cpu / f"{model_path.stem}.{engine_digest(kernels)}.json"
    if record.exists():
        return json.loads(record.read_text())
    image = build_image(model_path, board, out_dir=OUT / cpu, kernels=kernels, name="candidate", cpu=cpu)
    total = instructions_per_inference(image)
    counts = per_op_instructions(image, INVOKE_FUNCTION["prepared"], total, len(op_features(model_path.read_bytes())))
    write_text_atomic(record, json.dumps(counts))
    return counts


def built_op_features(model_path: Path, cpu: str, board: str, kernels: str):
    """The cost model's view of `model_path`'s ops with the loops its measured firmware runs: build_image's choice
    under the default code budget (narrow 3x3 depthwise layers channel-major when the NHWC loops do not fit)."""
    from mcuforge.firmware.boards import load_board
    from mcuforge.firmware.code_budget import DEFAULT_CODE_BUDGET, budgeted_image
    from mcuforge.firmware.latency_model import op_features

    model = model_path.read_bytes()
    built = budgeted_image(model, kernels, DEFAULT_CODE_BUDGET, load_board(board).compiled_for(cpu).cflags, str(model_path))
    return op_features(model, str(model_path), built.choices)


def errors_pct(model, samples) -> list[float]:
    """Per candidate, the predicted total's error against the measured total, in percent."""
    return [100.0 * (sum(model.op_instructions(ops)) / sum(counts) - 1.0) for ops, counts in samples]


def summary(errors: list[float]) -> dict:
    return {"candidates": len(errors), "mean_abs_error_pct": round(float(np.mean(np.abs(errors))), 2),
            "max_abs_error_pct": round(float(np.max(np.abs(errors))), 2)}


def main(argv: list[str] | None = None) -> int:
    from mcuforge.firmware.boards import load_board
    from mcuforge.firmware.candidate_cost import QEMU_BOARD_OF_CPU
    from mcuforge.firmware.latency_model import fit, store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", nargs="+", default=list(QEMU_BOARD_OF_CPU), choices=list(QEMU_BOARD_OF_CPU), metavar="CPU",
                        help=f"cores to fit (default all: {', '.join(QEMU_BOARD_OF_CPU)})")
    parser.add_argument("--train", type=int, default=24, help="candidates the coefficients are fitted on")
    parser.add_argument("--held-out", type=int, default=8, help="candidates the error is measured on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    models = candidate_models(args.train + args.held_out, args.seed)
    print(f"{'core':<14} {'board':<9} {'kernels':<9} {'set':<9} {'candidates':>10} {'mean |err| %':>13} {'max |err| %':>12}")
    for cpu in args.cores:
        board = QEMU_BOARD_OF_CPU[cpu]
        kernels = load_board(board).kernels
        samples = [(built_op_features(path, cpu, board, kernels), measure(path, cpu, board, kernels)) for path in models]
        model = fit(cpu, board, kernels, samples[:args.train])
        report = {"seed": args.seed, "train": summary(errors_pct(model, samples[:args.train])),
                  "held_out": summary(errors_pct(model, samples[args.train:]))}
        store(model, report)
        for subset in ("train", "held_out"):
            row = report[subset]
            print(f"{cpu:<14} {board:<9} {kernels:<9} {subset:<9} {row['candidates']:>10} {row['mean_abs_error_pct']:>13.2f} {row['max_abs_error_pct']:>12.2f}")
        sys.stdout.flush()
    print("\nerr: predicted instructions per inference against the qemu-icount count, per candidate.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
