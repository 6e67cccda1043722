"""The deploy target as the search sees it: its memory, and the measurements train may not make itself.

train imports neither deploy nor firmware (they import train), so the
orchestration (mcuforge.pipeline.search_target) hands these in, built from
module-level functions: spawned workers receive them pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CandidateCost:
    """A candidate's costs on a target, known before training."""

    flash_bytes: int  # model data the prepared firmware image carries (what `mcuforge firmware build` links for the model)
    arena_bytes: int  # the engine planner's peak arena, DSP scratch included (exact, from the host build of the engine)
    instructions: int  # per inference on the target's core, from the fitted per-op cost model
    macs: int


@dataclass(frozen=True)
class DeployTarget:
    """What the search needs from the spec's deploy target."""

    flash_bytes: int
    ram_bytes: int
    # (tf_keras model, representative inputs) -> its costs as the firmware would run it in int8
    candidate_cost: Callable[[Any, np.ndarray], CandidateCost]
    # (tf_keras model, representative inputs, x, y) -> accuracy of its int8 conversion on (x, y) through TFLM
    int8_accuracy: Callable[[Any, np.ndarray, np.ndarray, np.ndarray], float]
    # training inputs -> the inputs that calibrate the int8 conversion
    representative_sample: Callable[[np.ndarray], np.ndarray]
    # (tf_keras model, representative inputs, scratch directory) -> its costs all measured (instructions counted under
    # QEMU): the spec's hand-made model, whose ops the candidates' cost model may not cover
    reference_cost: Callable[[Any, np.ndarray, Path], CandidateCost]
