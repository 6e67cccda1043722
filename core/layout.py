"""Where everything under build/<name>/ lives: every stage directory and model file name, written once.

The pipeline, the stages' command-line entry points and the report all ask a
BuildLayout for paths instead of joining names themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# HDF5, not the .keras format: tf_keras cannot reload tfmot's quantize layers
# from .keras files ("expected 5 variables, but received 3"), and every stage
# that produces a Keras model saves it under this one name.
KERAS_MODEL_FILE = "model.h5"
INT8_MODEL_FILE = "model_int8.tflite"
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class BuildLayout:
    """The directory tree of one spec's build: build/<name>/{search,train,compress,deploy,firmware/<board>,accelerators}."""

    root: Path
    name: str

    @classmethod
    def of(cls, spec_name: str, root: Path | str = "build") -> BuildLayout:
        return cls(Path(root), spec_name)

    @property
    def base(self) -> Path:
        return self.root / self.name

    @property
    def train(self) -> Path:
        return self.base / "train"

    @property
    def search(self) -> Path:
        """Where an architecture search keeps its study (a journal file by default) beside its result."""
        return self.base / "search"

    @property
    def search_result(self) -> Path:
        """The search stage's output: the front, its plots and the chosen model section."""
        return self.search / "result"

    @property
    def compress(self) -> Path:
        return self.base / "compress"

    @property
    def deploy(self) -> Path:
        return self.base / "deploy"

    @property
    def accelerators(self) -> Path:
        return self.base / "accelerators"

    @property
    def firmware_root(self) -> Path:
        return self.base / "firmware"

    def firmware(self, board: str) -> Path:
        return self.firmware_root / board

    @property
    def report(self) -> Path:
        return self.base / REPORT_FILE

    def stage(self, name: str) -> Path:
        """The directory of a stage named in the pipeline's stage list (firmware: see `firmware`)."""
        return self.base / name
