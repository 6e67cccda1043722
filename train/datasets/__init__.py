"""Offline, deterministic data sets: a registry from name to (options class, loader).

Every loader takes its validated options, a seed and a cache directory and
returns a `Dataset`. Nothing is downloaded: data comes from installed packages
(scikit-learn's digits), from ../shared (magic-wand strokes), is synthesized
locally (espeak-ng speech, simulated vibration), or is read from users' files.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mcuforge.config import parse_dataclass
from mcuforge.errors import MCUForgeError

CLASSIFICATION = "classification"
ANOMALY = "anomaly"  # train on normal data only; y_test is 1 for anomalous; metric AUC


@dataclass
class Dataset:
    """Arrays per split plus what later stages need to interpret them."""

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    # Extra evaluation sets reported separately (e.g. real recordings): name -> (x, y).
    extra_eval: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    # Training samples that are views of one thing (one speaker's takes of a word) share an id,
    # for consistency training (train/consistency.py); None where the data has no such groups.
    train_groups: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> dict[str, Any]:
        """Shapes, dtypes, classes and counts per split, JSON-ready."""
        splits = {"train": self.y_train, "val": self.y_val, "test": self.y_test, **{k: v[1] for k, v in self.extra_eval.items()}}
        xs = {"train": self.x_train, "val": self.x_val, "test": self.x_test, **{k: v[0] for k, v in self.extra_eval.items()}}
        label_names = self.class_names if self.task == CLASSIFICATION else ["normal", "anomalous"]
        return {
            "name": self.name,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "dtype": str(self.x_train.dtype),
            "classes": self.class_names,
            "splits": {
                split: {
                    "count": int(len(y)),
                    "shape": list(xs[split].shape),
                    "per_class": {label_names[int(c)]: int(n) for c, n in zip(*np.unique(y, return_counts=True))},
                }
                for split, y in splits.items()
            },
            **({"notes": self.notes} if self.notes else {}),
        }


# name -> module under mcuforge.train.datasets defining OPTIONS (a dataclass) and load(options, seed, cache_dir).
REGISTRY: dict[str, str] = {
    "digits": "digits",
    "keywords": "keywords",
    "vibration": "vibration",
    "gestures": "gestures",
    "npz": "npz",
    "wav_folder": "wav_folder",
}


def _module(name: str):
    if name not in REGISTRY:
        raise MCUForgeError(f"data.dataset: expected one of {', '.join(REGISTRY)}. Received: {name!r}")
    return importlib.import_module(f"mcuforge.train.datasets.{REGISTRY[name]}")


def parse_options(name: str, options: dict) -> Any:
    """Validate `data.options` for data set `name` into its options dataclass."""
    module = _module(name)
    options_cls = module.OPTIONS[name] if isinstance(module.OPTIONS, dict) else module.OPTIONS
    return parse_dataclass(options_cls, options, "data.options")


def load(name: str, options: dict, seed: int, cache_dir: Path | str) -> Dataset:
    """Load data set `name` deterministically: same options and seed, identical arrays."""
    module = _module(name)
    loader: Callable = module.LOADERS[name] if hasattr(module, "LOADERS") else module.load
    return loader(parse_options(name, options), seed, Path(cache_dir))
