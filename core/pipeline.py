"""The main job: every stage of the pipeline on one spec, reusing what did not change.

train -> compress -> deploy (convert, evaluate, model report, C arrays) ->
firmware (build for an emulated board, run the test vectors in QEMU, compare
with TFLM) -> accelerators (Edge TPU check, Ethos-U estimate) -> report.html.
Each stage is keyed by the spec sections it reads and the digests of its
upstream outputs (see mcuforge.stages), so a second run recomputes only what
its inputs changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcuforge.artifacts import write_json_atomic
from mcuforge.errors import MCUForgeError
from mcuforge.spec import Spec, to_dict
from mcuforge.stages import StageOutcome, run_stage

DEFAULT_BOARD = "qemu-m4"
FIRMWARE_VECTORS = 16


@dataclass
class PipelineResult:
    spec: Spec
    root: Path
    stages: list[StageOutcome] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        return self.spec.build_dir(self.root)


def _train(spec: Spec, directory: Path) -> None:
    from mcuforge.train.trainer import train

    train(spec, directory)


def _compress(spec: Spec, root: Path) -> Callable[[Path], None]:
    def action(directory: Path) -> None:
        from mcuforge.compress.pipeline import compress

        compress(spec, root)

    return action


def _deploy(spec: Spec, root: Path) -> Callable[[Path], None]:
    def action(directory: Path) -> None:
        from mcuforge.deploy.convert import convert
        from mcuforge.deploy.evaluate import evaluate
        from mcuforge.deploy.export import export
        from mcuforge.deploy.report import build_report, write_report

        converted = convert(spec, root)
        evaluate(spec, root)
        write_report(build_report(converted.model_path, spec.deploy.target), directory / "report")
        labels = directory / "labels.txt"
        export(converted.model_path, directory / "export", spec.name.replace("-", "_"), labels if labels.is_file() else None)

    return action


def _firmware(spec: Spec, root: Path, board: str, vectors: int) -> Callable[[Path], None]:
    def action(directory: Path) -> None:
        from mcuforge.deploy.tflite_model import read_tflite
        from mcuforge.deploy.tflm import Emulator, prepare_input
        from mcuforge.firmware.build import build_image
        from mcuforge.firmware.qemu import run_qemu
        from mcuforge.train.trainer import load_dataset

        model_path = spec.build_dir(root) / "deploy" / "model_int8.tflite"
        dataset = load_dataset(spec)
        samples = dataset.x_test[:vectors]
        image = build_image(model_path, board, directory, inputs=samples)
        run = run_qemu(image)
        emulator = Emulator(read_tflite(model_path), model_path.read_bytes())
        expected = emulator.run(prepare_input(samples, emulator.inputs[0], "the test split"))[0]
        mismatches = [
            i for i, outputs in enumerate(run.outputs) if not np.array_equal(outputs[0].reshape(-1), expected[i].reshape(-1))
        ]
        if len(run.outputs) != len(samples) or mismatches:
            raise MCUForgeError(
                f"firmware on {board} disagrees with TFLM: {len(mismatches)} of {len(samples)} vectors differ "
                f"(first: {mismatches[:1]}); outputs must be bit-identical"
            )
        write_json_atomic(
            directory / "run.json",
            {
                "board": board,
                "vectors": len(samples),
                "identical_to_tflm": len(samples) - len(mismatches),
                "cycles": run.cycles,
                "arena_used": run.arena_used,
                "size": {
                    "text": image.size.text,
                    "data": image.size.data,
                    "bss": image.size.bss,
                    "model": image.size.model,
                    "arena": image.size.arena,
                    "flash_used": image.size.flash_used,
                    "ram_used": image.size.ram_used,
                    "flash_limit": image.size.flash_limit,
                    "ram_limit": image.size.ram_limit,
                },
            },
        )

    return action


def _accelerators(spec: Spec, root: Path) -> Callable[[Path], None]:
    def action(directory: Path) -> None:
        from mcuforge.deploy.edgetpu import check_file
        from mcuforge.deploy.npu import compile_for_npu

        model_path = spec.build_dir(root) / "deploy" / "model_int8.tflite"
        write_json_atomic(directory / "edgetpu_check.json", check_file(model_path).to_json())
        write_json_atomic(directory / "npu.json", compile_for_npu(model_path, directory / "vela").to_json())

    return action


def run_pipeline(
    spec: Spec,
    root: Path | str = "build",
    board: str = DEFAULT_BOARD,
    vectors: int = FIRMWARE_VECTORS,
    on_stage: Callable[[StageOutcome], None] = lambda _: None,
) -> PipelineResult:
    """Run every stage for `spec` under `root`, calling `on_stage` after each one."""
    root = Path(root)
    base = spec.build_dir(root)
    sections = to_dict(spec)
    result = PipelineResult(spec, root)

    def stage(name: str, directory: Path, key: dict, action: Callable[[Path], None]) -> StageOutcome:
        outcome = run_stage(name, directory, key, action)
        result.stages.append(outcome)
        on_stage(outcome)
        return outcome

    upstream = stage(
        "train",
        base / "train",
        {k: sections[k] for k in ("data", "model", "train")},
        lambda d: _train(spec, d),
    )
    if spec.compress.steps:
        upstream = stage(
            "compress",
            base / "compress",
            {"compress": sections["compress"], "data": sections["data"], "train": upstream.digest},
            _compress(spec, root),
        )
    deployed = stage(
        "deploy",
        base / "deploy",
        {"deploy": sections["deploy"], "data": sections["data"], "model": upstream.digest},
        _deploy(spec, root),
    )
    stage("firmware", base / "firmware" / board, {"board": board, "vectors": vectors, "model": deployed.digest}, _firmware(spec, root, board, vectors))
    stage("accelerators", base / "accelerators", {"model": deployed.digest}, _accelerators(spec, root))
    return result
