"""The main job: every stage of the pipeline on one spec, reusing what did not change.

[search ->] train -> compress -> deploy (convert, evaluate, model report, C arrays) ->
firmware (build for an emulated board, run the test vectors in QEMU, compare
with TFLM) -> accelerators (Edge TPU check, Ethos-U estimate) -> report.html.
Each stage is keyed by the spec sections it reads and the digests of its
upstream outputs (see mcuforge.stages), so a second run recomputes only what
its inputs changed. The stages are data (STAGES): a stage reads the typed
results of the stages before it and returns its own (mcuforge.results).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mcuforge.config import to_dict
from mcuforge.errors import MCUForgeError
from mcuforge.layout import BuildLayout
from mcuforge.progress import Progress
from mcuforge.results import (
    AcceleratorsResult,
    Artifact,
    CompressResult,
    DeployResult,
    FirmwareResult,
    FirmwareSize,
    KerasModelArtifact,
    SearchResult,
    TrainResult,
)
from mcuforge.spec import Spec
from mcuforge.stages import StageOutcome, run_stage
from mcuforge.train.search.target import DeployTarget

DEFAULT_BOARD = "qemu-m4"
FIRMWARE_VECTORS = 16


@dataclass
class Run:
    """What a stage may read: the spec, where things go, the firmware settings, and the stages done so far."""

    spec: Spec
    layout: BuildLayout
    board: str
    vectors: int
    progress: Progress
    outcomes: list[StageOutcome] = field(default_factory=list)

    @property
    def sections(self) -> dict[str, Any]:
        return to_dict(self.spec)

    def last(self, kind: type) -> StageOutcome:
        """The latest outcome whose result is a `kind` (e.g. the Keras model deploy converts)."""
        for outcome in reversed(self.outcomes):
            if isinstance(outcome.result, kind):
                return outcome
        raise MCUForgeError(f"no stage before this one produced a {kind.__name__}: check the pipeline's stage list")

    def keras_model(self) -> Path:
        upstream = self.last(KerasModelArtifact)
        return upstream.directory / upstream.result.model

    def int8_model(self) -> Path:
        deployed = self.last(DeployResult)
        return deployed.directory / deployed.result.model


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: where it writes, what its output depends on, and what it does.

    key: spec sections and upstream digests; when it is unchanged and the
    output is intact the stage is reused. action: writes into the directory it
    is given and returns the typed result. runs: whether the spec asks for it.
    """

    name: str
    result_type: type[Artifact]
    directory: Callable[[Run], Path]
    key: Callable[[Run], dict[str, Any]]
    action: Callable[[Run, Path], Artifact]
    runs: Callable[[Spec], bool] = lambda spec: True
    # the spec the later stages run (architecture search replaces the model section)
    updates_spec: Callable[[Spec, Artifact], Spec] = lambda spec, result: spec


def search_target(spec: Spec) -> DeployTarget:
    """The spec's deploy target as the search needs it: deploy's conversion and TFLM, firmware's engine costs."""
    from functools import partial

    from mcuforge.deploy.convert import representative_sample
    from mcuforge.deploy.evaluate import int8_accuracy
    from mcuforge.deploy.targets import load_target
    from mcuforge.firmware.candidate_cost import candidate_cost, reference_cost

    deploy = spec.deploy
    target = load_target(deploy.target)
    return DeployTarget(
        flash_bytes=target.flash_bytes,
        ram_bytes=target.ram_bytes,
        candidate_cost=partial(candidate_cost, target=deploy.target),
        int8_accuracy=partial(int8_accuracy, quantization=deploy.quantization, io_type=deploy.io_type),
        representative_sample=partial(representative_sample, count=deploy.representative_samples, seed=spec.data.seed),
        reference_cost=partial(reference_cost, target=deploy.target),
    )


def _search(run: Run, directory: Path) -> SearchResult:
    from mcuforge.train.search.stage import search

    return search(run.spec, directory, run.layout.search, search_target(run.spec), progress=run.progress)


def _with_chosen_model(spec: Spec, result: SearchResult) -> Spec:
    from mcuforge.train.search.stage import with_chosen_model

    return with_chosen_model(spec, result)


def _train(run: Run, directory: Path) -> TrainResult:
    from mcuforge.train.trainer import train

    return train(run.spec, directory, progress=run.progress)


def int8_test_accuracy(spec: Spec, keras_model: Path) -> float:
    """`keras_model` converted to int8 and scored on the test split in TFLM, in a scratch directory (deploy's own path)."""
    import tempfile

    from mcuforge.deploy.convert import convert
    from mcuforge.deploy.evaluate import evaluate

    with tempfile.TemporaryDirectory(prefix="mcuforge-int8-") as scratch:
        converted = convert(spec, source=keras_model, out_dir=Path(scratch))
        return float(evaluate(spec, model_path=converted.model_path, source=keras_model).tflm)


def _federate(run: Run, directory: Path) -> TrainResult:
    from mcuforge.train.federated.run import federate

    return federate(run.spec, directory, int8_test_accuracy, run.layout.root, progress=run.progress)


def _compress(run: Run, directory: Path) -> CompressResult:
    from mcuforge.compress.pipeline import compress_model

    return compress_model(run.spec, run.keras_model(), directory, progress=run.progress)


def _deploy(run: Run, directory: Path) -> DeployResult:
    from mcuforge.deploy.convert import convert
    from mcuforge.deploy.evaluate import evaluate
    from mcuforge.deploy.export import export
    from mcuforge.deploy.lce import LCE_OPS
    from mcuforge.deploy.report import build_report, write_report

    source = run.keras_model()
    converted = convert(run.spec, source=source, out_dir=directory)
    evaluate(run.spec, model_path=converted.model_path, source=source)
    result = DeployResult(source_model=str(source), labels=converted.labels_path.name if converted.labels_path else None)
    write_report(build_report(converted.model_path, run.spec.deploy.target), directory / Path(result.report).parent)
    if not set(converted.ops) & set(LCE_OPS):  # TFLM cannot run LCE's ops: no TFLM project for binarized models
        export(converted.model_path, directory / result.export, run.spec.name.replace("-", "_"), converted.labels_path)
    return result


def firmware_mismatches(outputs: list[np.ndarray], expected: np.ndarray) -> list[str]:
    """Each vector whose firmware output differs from TFLM's, naming the first differing byte.

    >>> firmware_mismatches([np.array([1, 2], np.int8)], np.array([[1, 3]], np.int8))
    ['vector 0: output byte 1 is 2, TFLM gives 3']
    """
    problems = []
    if len(outputs) != len(expected):
        problems.append(f"the firmware reported {len(outputs)} outputs for {len(expected)} vectors")
    for i, (got, want) in enumerate(zip(outputs, expected)):
        got, want = np.asarray(got).reshape(-1), np.asarray(want).reshape(-1)
        if got.shape != want.shape:
            problems.append(f"vector {i}: {got.size} output values, TFLM gives {want.size}")
            continue
        differing = np.flatnonzero(got.astype(np.int64) != want.astype(np.int64))
        if differing.size:
            byte = int(differing[0])
            problems.append(f"vector {i}: output byte {byte} is {got[byte]}, TFLM gives {want[byte]}")
    return problems


def _firmware(run: Run, directory: Path) -> FirmwareResult:
    # The one place the pipeline names the firmware's functions.
    from mcuforge.firmware.build import build_image
    from mcuforge.firmware.qemu import run_qemu
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.deploy.lce import reference_emulator
    from mcuforge.deploy.tflm import prepare_input
    from mcuforge.train.trainer import load_dataset

    model_path = run.int8_model()
    samples = load_dataset(run.spec).x_test[: run.vectors]
    image = build_image(model_path, run.board, directory, inputs=samples)
    ran = run_qemu(image)
    emulator = reference_emulator(read_tflite(model_path), model_path.read_bytes())
    expected = emulator.run(prepare_input(samples, emulator.inputs[0], "the test split"))[0]
    problems = firmware_mismatches([outputs[0] for outputs in ran.outputs], expected)
    if problems:
        raise MCUForgeError(
            f"firmware on {run.board} disagrees with TFLM on {len(problems)} of {len(samples)} vectors "
            f"({'; '.join(problems[:3])}); outputs must be bit-identical"
        )
    return FirmwareResult(
        board=run.board,
        vectors=len(samples),
        identical_to_tflm=len(samples),
        cycles=list(ran.cycles),
        arena_used=ran.arena_used,
        size=FirmwareSize.of(image.size),
    )


def _binary_archs() -> frozenset[str]:
    from mcuforge.train.zoo import BINARY_ARCHS

    return BINARY_ARCHS


def _accelerators(run: Run, directory: Path) -> AcceleratorsResult:
    from mcuforge.artifacts import write_json_atomic
    from mcuforge.deploy.edgetpu import check_file
    from mcuforge.deploy.npu import compile_for_npu

    model_path = run.int8_model()
    result = AcceleratorsResult()
    write_json_atomic(directory / result.edgetpu_check, check_file(model_path).to_json())
    write_json_atomic(directory / result.npu, compile_for_npu(model_path, directory / "vela").to_json())
    return result


STAGES: tuple[Stage, ...] = (
    Stage(
        "search",
        SearchResult,
        lambda run: run.layout.search_result,
        lambda run: {k: run.sections[k] for k in ("data", "train", "deploy", "search")},
        _search,
        runs=lambda spec: spec.search is not None,
        updates_spec=_with_chosen_model,
    ),
    Stage(
        "train",
        TrainResult,
        lambda run: run.layout.train,
        lambda run: {k: run.sections[k] for k in ("data", "model", "train")},
        _train,
        runs=lambda spec: spec.federated is None,
    ),
    Stage(
        "federate",
        TrainResult,
        lambda run: run.layout.stage("federate"),
        lambda run: {k: run.sections[k] for k in ("data", "model", "train", "federated", "deploy")},
        _federate,
        runs=lambda spec: spec.federated is not None,
    ),
    Stage(
        "compress",
        CompressResult,
        lambda run: run.layout.compress,
        lambda run: {"compress": run.sections["compress"], "data": run.sections["data"], "train": run.last(TrainResult).digest},
        _compress,
        runs=lambda spec: bool(spec.compress.steps),
    ),
    Stage(
        "deploy",
        DeployResult,
        lambda run: run.layout.deploy,
        lambda run: {"deploy": run.sections["deploy"], "data": run.sections["data"], "model": run.last(KerasModelArtifact).digest},
        _deploy,
    ),
    Stage(
        "firmware",
        FirmwareResult,
        lambda run: run.layout.firmware(run.board),
        lambda run: {"board": run.board, "vectors": run.vectors, "model": run.last(DeployResult).digest},
        _firmware,
    ),
    Stage(
        "accelerators",
        AcceleratorsResult,
        lambda run: run.layout.accelerators,
        lambda run: {"model": run.last(DeployResult).digest},
        _accelerators,
        runs=lambda spec: spec.model.arch not in _binary_archs(),  # Edge TPU and Ethos-U cannot run LCE ops
    ),
)


@dataclass
class PipelineResult:
    spec: Spec
    layout: BuildLayout
    stages: list[StageOutcome] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        return self.layout.base


def check_spec(spec: Spec) -> None:
    """Every stage's own checks of its spec options (data set, model, compression recipe), before any stage runs."""
    from mcuforge.compress.pipeline import parse_recipe
    from mcuforge.train.trainer import check_spec as check_train_spec

    check_train_spec(spec)
    parse_recipe(spec.compress, spec.model.arch)


def run_pipeline(
    spec: Spec,
    root: Path | str = "build",
    board: str = DEFAULT_BOARD,
    vectors: int = FIRMWARE_VECTORS,
    on_stage: Callable[[StageOutcome], None] = lambda _: None,
    progress: Progress | None = None,
    stages: tuple[Stage, ...] = STAGES,
) -> PipelineResult:
    """Run `stages` for `spec` under `root`, calling `on_stage` after each one; `progress` shows the work inside them."""
    check_spec(spec)
    run = Run(spec, spec.layout(root), board, vectors, progress or Progress.quiet())
    for stage in stages:
        if not stage.runs(spec):
            continue
        outcome = run_stage(
            stage.name,
            stage.directory(run),
            stage.key(run),
            lambda directory, stage=stage: stage.action(run, directory),
            stage.result_type,
            on_run=lambda stage=stage: run.progress.line(f"{stage.name}: running"),
        )
        run.outcomes.append(outcome)
        run.spec = stage.updates_spec(run.spec, outcome.result)
        on_stage(outcome)
    return PipelineResult(spec, run.layout, run.outcomes)
