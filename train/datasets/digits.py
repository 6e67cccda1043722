"""scikit-learn's bundled 8x8 handwritten digits (1,797 real samples): nothing to download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.config import spec_field
from mcuforge.train.datasets import CLASSIFICATION, Dataset


@dataclass(frozen=True)
class DigitsOptions:
    test_fraction: float = spec_field(0.2, min_exclusive=0.0, max=0.5, help="held-out test share")
    val_fraction: float = spec_field(0.1, min_exclusive=0.0, max=0.5, help="validation share of the rest")


OPTIONS = DigitsOptions


def load(options: DigitsOptions, seed: int, cache_dir: Path) -> Dataset:
    """Stratified train/val/test split of the digits, pixels scaled to [0, 1], shape (8, 8, 1)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=options.test_fraction, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=options.val_fraction, stratify=y_rest, random_state=seed
    )
    return Dataset(
        name="digits",
        task=CLASSIFICATION,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=[str(d) for d in range(10)],
    )
