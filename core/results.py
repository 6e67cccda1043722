"""The typed artifact each stage returns, saved beside its files as JSON.

A stage's action writes its files and returns one of these; the stage runner
saves it into the stage directory and, on reuse, loads it back (`load(save(x))
== x`). The next stage, the report and the CLI read these objects instead of
guessing keys. File fields name files relative to the stage directory, so a
directory can move without rewriting them.
A stage that stands in for another (a search or federated stage in place of
train) returns the same type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from mcuforge.artifacts import write_json_atomic
from mcuforge.config import parse_dataclass, to_dict
from mcuforge.errors import MCUForgeError
from mcuforge.layout import INT8_MODEL_FILE, KERAS_MODEL_FILE
from mcuforge.spec import ModelSpec

A = TypeVar("A", bound="Artifact")


class Artifact:
    """Mixin for a frozen dataclass stored as `FILE` in its stage directory."""

    FILE: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_json(cls: type[A], data: dict[str, Any]) -> A:
        return parse_dataclass(cls, data, cls.FILE)

    def save(self, directory: Path | str) -> Path:
        return write_json_atomic(Path(directory) / self.FILE, self.to_json())

    @classmethod
    def load(cls: type[A], directory: Path | str) -> A:
        path = Path(directory) / cls.FILE
        if not path.is_file():
            raise MCUForgeError(f"no {cls.__name__} at {path}: run the stage that writes it first")
        return cls.from_json(json.loads(path.read_text()))


class KerasModelArtifact(Artifact):
    """An artifact whose `model` field names a Keras model: what the deploy stage converts."""

    model: str


@dataclass(frozen=True)
class TrainResult(KerasModelArtifact):
    """A trained Keras model and its metrics record (task, arch, sizes, and one score mapping per split).

    Stored as metrics.json: the metrics themselves at the top level, plus the model's file name.
    """

    FILE: ClassVar[str] = "metrics.json"
    metrics: dict
    model: str = KERAS_MODEL_FILE

    def to_json(self) -> dict[str, Any]:
        return {**self.metrics, "model": self.model}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainResult:
        metrics = dict(data)
        return cls(metrics=metrics, model=metrics.pop("model", KERAS_MODEL_FILE))

    @property
    def metric_name(self) -> str:
        return "auc" if self.metrics["task"] == "anomaly" else "accuracy"


@dataclass(frozen=True)
class StepRow:
    """One measured point of the compress stage: the float model, the trained int8 model, or a step's output.

    The float row has `float_bytes` and no int8 figures; every other row has the
    int8 figures (`compressed_bytes` is the LUT-compressed size, or the int8 size
    when LUT compression does not apply).
    """

    step: str
    metric: float
    parameters: int
    nonzero_parameters: int
    macs: int
    float_bytes: int | None = None
    quantization_aware: bool | None = None
    int8_bytes: int | None = None
    compressed_bytes: int | None = None
    arena_bytes: int | None = None
    image_bytes: int | None = None  # the engine's prepared image (what its firmware flashes; sparse filters encoded)
    tflite: str | None = None
    compressed_tflite: str | None = None
    compressed_outputs_differing: int | None = None
    side: bool = False  # a comparison point off the chain (distillation from labels only)
    layer_sparsity: dict | None = None
    channels_before: dict | None = None
    channels_after: dict | None = None

    @property
    def model_bytes(self) -> int:
        """The row's .tflite size: int8, or float for the float row."""
        return self.float_bytes if self.int8_bytes is None else self.int8_bytes

    @property
    def flash_bytes(self) -> int:
        """What the model takes in flash: LUT-compressed where smaller, float for the float row."""
        return self.float_bytes if self.compressed_bytes is None else self.compressed_bytes


@dataclass(frozen=True)
class RecipeStep:
    step: str
    options: dict


@dataclass(frozen=True)
class CompressResult(KerasModelArtifact):
    """The compressed Keras model, the recipe that made it, and every measured row (float, trained, each step)."""

    FILE: ClassVar[str] = "steps.json"
    spec: str
    metric: str
    recipe: list[RecipeStep]
    rows: list[StepRow]
    model: str = KERAS_MODEL_FILE

    @property
    def chained(self) -> list[StepRow]:
        """The rows along the recipe, without side comparisons."""
        return [row for row in self.rows if not row.side]


@dataclass(frozen=True)
class DeployResult(Artifact):
    """The int8 model the device runs, the Keras model it came from, and the deploy stage's records."""

    FILE: ClassVar[str] = "deploy.json"
    source_model: str  # the upstream Keras model, as passed to convert
    model: str = INT8_MODEL_FILE
    labels: str | None = None
    convert: str = "convert.json"
    evaluation: str = "evaluation.json"
    report: str = "report/model_int8_report.json"
    export: str = "export"


@dataclass(frozen=True)
class FirmwareSize:
    """Section sizes of the linked image against the board's limits, in bytes."""

    text: int
    data: int
    bss: int
    model: int
    arena: int
    flash_used: int
    ram_used: int
    flash_limit: int
    ram_limit: int

    @classmethod
    def of(cls, size: Any) -> FirmwareSize:
        """From the firmware builder's size report (any object with these attributes)."""
        return cls(**{f.name: getattr(size, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class FirmwareResult(Artifact):
    """The firmware run under QEMU: vectors compared with TFLM, emulated cycles, arena and image sizes."""

    FILE: ClassVar[str] = "run.json"
    board: str
    vectors: int
    identical_to_tflm: int
    cycles: list[int]
    arena_used: int
    size: FirmwareSize


@dataclass(frozen=True)
class AcceleratorsResult(Artifact):
    """Where the Edge TPU check and the Ethos-U (Vela) estimate were written."""

    FILE: ClassVar[str] = "accelerators.json"
    edgetpu_check: str = "edgetpu_check.json"
    npu: str = "npu.json"


@dataclass(frozen=True)
class SearchResult(Artifact):
    """An architecture search: its study, trial counts, and the chosen candidate's model section and measured costs.

    The train stage builds `chosen_model` in place of the spec's model section.
    Costs are the target's (flash and arena in bytes, instructions per inference);
    `accuracy` is the int8 model's through TFLM on the validation split.
    """

    FILE: ClassVar[str] = "search.json"
    study: str
    storage: str
    trials: int
    complete: int
    pruned: int  # stopped early by the pruner
    rejected: int  # over a budget: never trained
    failed: int
    seconds: float
    chosen_trial: int
    chosen_model: ModelSpec
    accuracy: float
    flash_bytes: int
    arena_bytes: int
    instructions: int
    # select within_reference: the spec's own (hand-made) model's measured costs, which bound the choice
    reference_instructions: int | None = None
    reference_arena_bytes: int | None = None
    reference_flash_bytes: int | None = None
    chosen_num_mfcc: int | None = None  # search.space.num_mfcc: the keyword features' coefficients the model was chosen with
    chosen_frame_stride_ms: int | None = None  # search.space.frame_stride_ms: the keyword features' frame stride it was chosen with
    # search.finalists: how many were trained again for finalist_epochs; the chosen one's int8 validation accuracy then
    finalists: int = 0
    finalist_epochs: int | None = None
    final_accuracy: float | None = None
    table: str = "front.md"
    front_csv: str = "front.csv"
    front_json: str = "front.json"
    plot: str = "front.png"
    fragment: str = "chosen.yaml"


@dataclass(frozen=True)
class ClientGain:
    """Held-out accuracy of the global and the personalized model on one federated client's own data."""

    client: int
    train_samples: int
    held_out_samples: int
    global_accuracy: float
    personalized_accuracy: float

    @property
    def gain(self) -> float:
        return self.personalized_accuracy - self.global_accuracy


@dataclass(frozen=True)
class PersonalizationResult(Artifact):
    """Per-client fine-tuning of the federated model's head (train/federated/personalize.py), beside its model."""

    FILE: ClassVar[str] = "personalization.json"
    steps: int
    learning_rate: float
    held_out_fraction: float
    clients: list[ClientGain]
    plot: str = "personalization.png"

    @property
    def mean_gain(self) -> float:
        return sum(c.gain for c in self.clients) / len(self.clients)
