"""Run a .tflite on input arrays in the TFLM host interpreter, as the device would."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.artifacts import write_bytes_atomic
from mcuforge.deploy.export import LABELS_FILE, read_labels
from mcuforge.deploy.tflite_model import read_tflite
from mcuforge.deploy.lce import reference_emulator
from mcuforge.deploy.tflm import dequantize, prepare_input
from mcuforge.errors import MCUForgeError


@dataclass(frozen=True)
class EmulateResult:
    raw: np.ndarray  # output 0 as TFLM produced it, one row per sample
    values: np.ndarray  # output 0 dequantized
    top_k: list[list[tuple[str, float]]] | None  # per sample, for classifiers
    output_path: Path | None


def load_array(path: Path | str) -> np.ndarray:
    """A .npy file as an array; MCUForgeError when it is missing or not a plain .npy."""
    path = Path(path)
    if not path.is_file():
        raise MCUForgeError(f"input file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise MCUForgeError(f"{path} is not a numpy .npy array ({exc}): save inputs with numpy.save") from None


def save_array(path: Path | str, array: np.ndarray) -> Path:
    """Write a .npy atomically."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return write_bytes_atomic(path, buffer.getvalue())


def top_k(values: np.ndarray, labels: list[str] | None, k: int) -> list[list[tuple[str, float]]]:
    """The k highest scores of each row with their labels (class indices when there are none).

    >>> top_k(np.array([[0.1, 0.7, 0.2]]), ["a", "b", "c"], 2)
    [[('b', 0.7), ('c', 0.2)]]
    """
    result = []
    for row in values.reshape(len(values), -1):
        order = np.argsort(-row, kind="stable")[:k]
        result.append([(labels[i] if labels and i < len(labels) else str(i), float(row[i])) for i in order])
    return result


def emulate(
    model_path: Path | str,
    inputs: np.ndarray | Path | str,
    output_path: Path | str | None = None,
    labels_path: Path | str | None = None,
    k: int = 3,
) -> EmulateResult:
    """Run every sample of `inputs` through TFLM one by one; optionally save the raw output 0.
    Models with Larq Compute Engine ops run in LCE's reference instead (deploy/lce.py).

    Integer inputs must have the model's input dtype; float inputs are quantized
    with its scale and zero point. Classifiers (a SOFTMAX last, or labels
    available) also get their top-k classes.
    """
    model_path = Path(model_path)
    model = read_tflite(model_path)
    array = load_array(inputs) if isinstance(inputs, (str, Path)) else np.asarray(inputs)
    emulator = reference_emulator(model, model_path.read_bytes())
    batch = prepare_input(array, emulator.inputs[0])
    raw = emulator.run(batch)[0]
    values = dequantize(raw, emulator.outputs[0])
    if labels_path is None and (model_path.parent / LABELS_FILE).is_file():
        labels_path = model_path.parent / LABELS_FILE
    labels = read_labels(labels_path) if labels_path is not None else None
    is_classifier = labels is not None or (model.main.operators and model.main.operators[-1].opcode == "SOFTMAX")
    saved = save_array(output_path, raw) if output_path is not None else None
    return EmulateResult(raw, values, top_k(values, labels, k) if is_classifier else None, saved)
