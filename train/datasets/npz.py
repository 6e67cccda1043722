"""Users' own data: one `.npz` file with the splits as arrays.

Required arrays: `x_train`, `y_train`, `x_test`, `y_test`. Optional: `x_val` and
`y_val` (together; otherwise a validation share is carved from train,
stratified, with the data seed) and `class_names` (strings; default "0", "1",
...). x arrays hold real numbers (converted to float32) with the same sample
shape in every split; y arrays hold non-negative integer labels, one per
sample. With `task: anomaly`, train and val must be all normal (0) and test
labels 0 (normal) or 1 (anomalous). Files are read without pickle.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError
from mcuforge.train.datasets import ANOMALY, CLASSIFICATION, Dataset

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val", "class_names")
ANOMALY_CLASSES = ["normal", "anomalous"]


@dataclass(frozen=True)
class NpzOptions:
    path: str = spec_field(help=".npz file (relative to the current directory)")
    task: str = spec_field(CLASSIFICATION, choices=(CLASSIFICATION, ANOMALY))
    val_fraction: float = spec_field(0.1, min_exclusive=0.0, max=0.5, help="share of train used for validation when the file has no x_val")


OPTIONS = NpzOptions


def _fail(path: Path, problem: str) -> MCUForgeError:
    return MCUForgeError(f"data.options.path: {path}: {problem}")


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise _fail(path, "file not found. Point data.options.path at an existing .npz file")
    if not zipfile.is_zipfile(path):
        raise _fail(path, "not a readable .npz archive. Save the arrays with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _fail(path, f"not a readable .npz archive ({exc}). Save it with numpy.savez") from None
    except ValueError as exc:  # object arrays need pickle, which we refuse
        raise _fail(path, f"holds an object array ({exc}). Store labels as integers and class_names as strings") from None


def _features(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "iuf":
        raise _fail(path, f"{name}: expected real numbers (int or float). Received dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise _fail(path, f"{name}: expected a non-empty array [samples, ...features]. Received shape {x.shape}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise _fail(path, f"{name}: holds NaN or infinite values. Replace or drop those samples")
    return x


def _labels(path: Path, name: str, y: np.ndarray, samples: int) -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise _fail(path, f"{name}: expected integer class labels. Received dtype {y.dtype}")
    if y.ndim != 1:
        raise _fail(path, f"{name}: expected one label per sample (1-D). Received shape {y.shape}")
    if len(y) != samples:
        raise _fail(path, f"{name} has {len(y)} labels but x{name[1:]} has {samples} samples. They must match")
    if len(y) and y.min() < 0:
        raise _fail(path, f"{name}: expected labels >= 0. Received {int(y.min())}")
    return y.astype(np.int64)


def _class_names(path: Path, arrays: dict[str, np.ndarray], task: str, labels: list[np.ndarray]) -> list[str]:
    highest = max(int(y.max()) for y in labels if len(y))
    if "class_names" not in arrays:
        return list(ANOMALY_CLASSES) if task == ANOMALY else [str(c) for c in range(highest + 1)]
    names = arrays["class_names"]
    if names.dtype.kind not in "US" or names.ndim != 1:
        raise _fail(path, f"class_names: expected a 1-D array of strings. Received dtype {names.dtype}, shape {names.shape}")
    names = [str(n) for n in names.astype(str)]
    if highest >= len(names):
        raise _fail(path, f"label {highest} has no name: class_names has only {len(names)} entries")
    if task == ANOMALY and len(names) != 2:
        raise _fail(path, f"class_names: an anomaly data set has 2 classes (normal, anomalous). Received {names}")
    return names


def _carve_validation(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Split train deterministically; stratified when every class has at least two samples."""
    from sklearn.model_selection import train_test_split

    count = max(1, int(round(fraction * len(y))))
    if count >= len(y):
        raise MCUForgeError(
            f"data.options.val_fraction: train has only {len(y)} samples, too few to carve a validation split. "
            "Add x_val/y_val to the file or more training samples"
        )
    _, per_class = np.unique(y, return_counts=True)
    stratify = y if per_class.min() >= 2 and count >= len(per_class) else None
    return train_test_split(x, y, test_size=count, stratify=stratify, random_state=seed)


def load(options: NpzOptions, seed: int, cache_dir: Path) -> Dataset:
    """Validate the file's arrays and return them as a Dataset (validation carved from train when absent)."""
    path = Path(options.path)
    arrays = _read(path)
    for name in REQUIRED:
        if name not in arrays:
            raise _fail(path, f"no '{name}' array. An npz data set needs {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})")
    unknown = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise _fail(path, f"unexpected array '{unknown[0]}'. Allowed: {', '.join(REQUIRED + OPTIONAL)}")
    if ("x_val" in arrays) != ("y_val" in arrays):
        present, missing = ("x_val", "y_val") if "x_val" in arrays else ("y_val", "x_val")
        raise _fail(path, f"has '{present}' but no '{missing}'. Provide both or neither")
    splits = ["train", "test"] + (["val"] if "x_val" in arrays else [])
    xs = {s: _features(path, f"x_{s}", arrays[f"x_{s}"]) for s in splits}
    ys = {s: _labels(path, f"y_{s}", arrays[f"y_{s}"], len(xs[s])) for s in splits}
    for s in splits:
        if xs[s].shape[1:] != xs["train"].shape[1:]:
            raise _fail(
                path, f"x_{s} samples have shape {xs[s].shape[1:]} but x_train samples {xs['train'].shape[1:]}. They must match"
            )
    if options.task == ANOMALY:
        for s in splits:
            labels = sorted(set(np.unique(ys[s]).tolist()))
            rule = "labels test samples 0 (normal) or 1 (anomalous)" if s == "test" else "trains on normal samples only (all 0)"
            if not set(labels) <= ({0, 1} if s == "test" else {0}):
                raise _fail(path, f"y_{s}: an anomaly data set {rule}. Received labels {labels}")
    class_names = _class_names(path, arrays, options.task, list(ys.values()))
    if "val" in xs:
        x_train, x_val, y_train, y_val = xs["train"], xs["val"], ys["train"], ys["val"]
        validation = "from the file"
    else:
        x_train, x_val, y_train, y_val = _carve_validation(xs["train"], ys["train"], options.val_fraction, seed)
        validation = f"carved from train ({options.val_fraction:.0%}, seed {seed})"
    return Dataset(
        name="npz",
        task=options.task,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=xs["test"],
        y_test=ys["test"],
        class_names=class_names,
        notes={"path": str(path), "validation": validation},
    )
