"""Real magic-wand digit strokes (petewarden/magic_wand_digit_data, Apache-2.0), rasterized.

1,000 strokes (digits 0-9, 100 each) of (x, y) points tracked from a real IMU,
read from `<shared>/data/magic_wand_digits/*.json`, where `<shared>` is
$MCUFORGE_SHARED or else the `shared` folder beside the repository. Each stroke
is centred, scaled to fit (keeping its aspect ratio) and drawn as a small
grayscale image whose brightness grows along the stroke, so the direction of
writing is visible, as the Arduino magic-wand example does with colour.

The held-out test and validation splits are stratified and fixed (they do not
depend on the data seed); the seed only drives the augmentation of the training
strokes (small random rotations, stretches and shears).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError
from mcuforge.train.datasets import CLASSIFICATION, Dataset

SHARED_ENV = "MCUFORGE_SHARED"
STROKES_DIR = Path("data") / "magic_wand_digits"
SPLIT_SEED = 0  # the held-out split never changes with the data seed
MARGIN_PX = 2
STEP_PX = 0.5  # arc-length step when drawing, fine enough to leave no gaps
START_INTENSITY = 0.3  # brightness of the first point; the last is 1.0


@dataclass(frozen=True)
class GesturesOptions:
    image_size: int = spec_field(32, min=12, max=96, help="side of the square image (pixels)")
    line_width: int = spec_field(2, min=1, max=4, help="pen width (pixels)")
    test_fraction: float = spec_field(0.2, min_exclusive=0.0, max=0.5, help="held-out test share")
    val_fraction: float = spec_field(0.1, min_exclusive=0.0, max=0.5, help="validation share of the rest")
    augment: int = spec_field(2, min=0, max=50, help="extra distorted copies of each training stroke")
    rotation_deg: float = spec_field(10.0, min=0.0, max=45.0, help="augmentation: largest rotation")
    stretch: float = spec_field(0.15, min=0.0, max=0.5, help="augmentation: largest relative stretch per axis")
    shear: float = spec_field(0.15, min=0.0, max=0.5, help="augmentation: largest shear")


OPTIONS = GesturesOptions


def shared_dirs() -> list[Path]:
    """Where `shared` may be: $MCUFORGE_SHARED alone if set, else beside the source tree, then beside the current directory.

    The second place serves installs that are not editable, run from the repository.
    """
    override = os.environ.get(SHARED_ENV)
    if override:
        return [Path(override)]
    return [Path(__file__).resolve().parents[2].parent / "shared", Path.cwd().resolve().parent / "shared"]


def strokes_dir() -> Path:
    """The magic-wand strokes folder, with an error naming where it looked and how to point elsewhere."""
    tried = [folder / STROKES_DIR for folder in dict.fromkeys(shared_dirs())]
    for folder in tried:
        if folder.is_dir() and any(folder.glob("*.json")):
            return folder
    raise MCUForgeError(
        f"gestures: no magic-wand stroke files (*.json) in {' or '.join(map(str, tried))}. Set {SHARED_ENV} to the "
        f"folder that holds {STROKES_DIR} (a copy of github.com/petewarden/magic_wand_digit_data)"
    )


def read_strokes(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    """Every stroke as float64 points [n, 2] (x, y) with its label, in file and index order."""
    strokes, labels = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            records = json.loads(path.read_text())["strokes"]
            for record in records:
                points = np.array([[p["x"], p["y"]] for p in record["strokePoints"]], dtype=np.float64)
                if points.ndim != 2 or len(points) == 0:
                    raise ValueError("a stroke without points")
                strokes.append(points)
                labels.append(str(record["label"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise MCUForgeError(
                f"gestures: {path} is not a magic-wand stroke file "
                f'({{"strokes": [{{"label", "strokePoints": [{{"x", "y"}}]}}]}}): {exc!r}'
            ) from None
    return strokes, labels


def rasterize(points: np.ndarray, size: int, line_width: int) -> np.ndarray:
    """Draw a stroke, centred and scaled to fit, into a float32 [size, size, 1] image in [0, 1]."""
    time = np.linspace(START_INTENSITY, 1.0, len(points)) if len(points) > 1 else np.ones(1)
    low, high = points.min(axis=0), points.max(axis=0)
    extent = max(float((high - low).max()), 1e-6)
    span = size - 1 - 2 * MARGIN_PX - (line_width - 1)
    normalized = (points - (low + high) / 2) / extent  # in [-0.5, 0.5], aspect ratio kept
    u = (normalized[:, 0] + 0.5) * span + MARGIN_PX
    v = (0.5 - normalized[:, 1]) * span + MARGIN_PX  # image rows grow downwards
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(u), np.diff(v)))])
    moving = np.concatenate([[True], np.diff(arc) > 0])  # drop repeated points: np.interp needs increasing arc
    arc, u, v, time = arc[moving], u[moving], v[moving], time[moving]
    samples = np.linspace(0.0, arc[-1], max(2, int(math.ceil(arc[-1] / STEP_PX)) + 1))
    columns = np.rint(np.interp(samples, arc, u)).astype(np.int64)
    rows = np.rint(np.interp(samples, arc, v)).astype(np.int64)
    intensity = np.interp(samples, arc, time).astype(np.float32)
    image = np.zeros((size, size), dtype=np.float32)
    for dy in range(line_width):
        for dx in range(line_width):
            np.maximum.at(image, (rows + dy, columns + dx), intensity)
    return image[..., np.newaxis]


def distort(points: np.ndarray, options: GesturesOptions, rng: np.random.Generator) -> np.ndarray:
    """A random rotation, per-axis stretch and shear about the stroke's centre."""
    angle = math.radians(rng.uniform(-options.rotation_deg, options.rotation_deg))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    stretch = np.diag(1 + rng.uniform(-options.stretch, options.stretch, 2))
    shear = np.array([[1.0, rng.uniform(-options.shear, options.shear)], [0.0, 1.0]])
    centre = points.mean(axis=0)
    return (points - centre) @ (rotation @ stretch @ shear).T + centre


def _images(strokes: list[np.ndarray], options: GesturesOptions) -> np.ndarray:
    return np.stack([rasterize(points, options.image_size, options.line_width) for points in strokes])


def load(options: GesturesOptions, seed: int, cache_dir: Path) -> Dataset:
    """Fixed stratified train/val/test split of the strokes; training strokes augmented with `seed`."""
    from sklearn.model_selection import train_test_split

    strokes, labels = read_strokes(strokes_dir())
    class_names = sorted(set(labels), key=lambda name: (len(name), name))
    y = np.array([class_names.index(label) for label in labels], dtype=np.int64)
    index = np.arange(len(strokes))
    rest, test = train_test_split(index, test_size=options.test_fraction, stratify=y, random_state=SPLIT_SEED)
    train, val = train_test_split(rest, test_size=options.val_fraction, stratify=y[rest], random_state=SPLIT_SEED)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6E57]))
    augmented = [distort(strokes[i], options, rng) for _ in range(options.augment) for i in train]
    train_strokes = [strokes[i] for i in train] + augmented
    return Dataset(
        name="gestures",
        task=CLASSIFICATION,
        x_train=_images(train_strokes, options),
        y_train=np.tile(y[train], options.augment + 1),
        x_val=_images([strokes[i] for i in val], options),
        y_val=y[val],
        x_test=_images([strokes[i] for i in test], options),
        y_test=y[test],
        class_names=class_names,
        notes={
            "source": "github.com/petewarden/magic_wand_digit_data (Apache-2.0)",
            "strokes": len(strokes),
            "train_strokes": len(train),
            "augmented_copies": options.augment,
        },
    )
