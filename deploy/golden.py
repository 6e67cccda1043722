"""Golden regression: input vectors and TFLM's outputs kept beside a model, checked byte for byte.

A golden directory holds `input.npy` (what is fed, in the model's input dtype),
`output_<i>.npy` (TFLM's raw outputs) and `golden.json` (the model's sha256, so
a changed model is caught too). Verify reruns TFLM and fails on any changed
byte, naming the model, the input and the element.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.artifacts import atomic_output_dir
from mcuforge.deploy.emulate import load_array, save_array
from mcuforge.deploy.tflite_model import Tensor, read_tflite
from mcuforge.deploy.lce import reference_emulator
from mcuforge.deploy.tflm import prepare_input
from mcuforge.errors import MCUForgeError

META_FILE = "golden.json"
INPUT_FILE = "input.npy"


@dataclass(frozen=True)
class GoldenResult:
    directory: Path
    samples: int
    outputs: list[np.ndarray]


def default_dir(model_path: Path | str) -> Path:
    """Where goldens live unless told otherwise: `<model>.golden/` beside the model."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".golden")


def random_inputs(tensor: Tensor, count: int, seed: int) -> np.ndarray:
    """`count` seeded samples covering the input's whole range (integers) or N(0, 1) (floats)."""
    rng = np.random.default_rng(seed)
    shape = (count, *tensor.shape[1:]) if tensor.shape and tensor.shape[0] == 1 else (count, *tensor.shape)
    dtype = tensor.numpy_dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record(
    model_path: Path | str,
    golden_dir: Path | str | None = None,
    inputs: np.ndarray | Path | str | None = None,
    count: int = 4,
    seed: int = 0,
) -> GoldenResult:
    """Run `inputs` (or `count` seeded random samples) through TFLM and store them with the outputs."""
    model_path = Path(model_path)
    model = read_tflite(model_path)
    data = model_path.read_bytes()
    emulator = reference_emulator(model, data)
    tensor = emulator.inputs[0]
    if inputs is None:
        batch = random_inputs(tensor, count, seed)
    else:
        batch = prepare_input(load_array(inputs) if isinstance(inputs, (str, Path)) else inputs, tensor)
    outputs = emulator.run(batch)
    golden_dir = Path(golden_dir) if golden_dir is not None else default_dir(model_path)
    meta = {"model": model_path.name, "model_sha256": _sha256(data), "samples": len(batch), "outputs": len(outputs)}
    with atomic_output_dir(golden_dir) as staging:
        save_array(staging / INPUT_FILE, batch)
        for i, output in enumerate(outputs):
            save_array(staging / f"output_{i}.npy", output)
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return GoldenResult(golden_dir, len(batch), outputs)


def verify(model_path: Path | str, golden_dir: Path | str | None = None) -> GoldenResult:
    """Rerun the stored inputs; MCUForgeError on the first difference from the stored outputs."""
    model_path = Path(model_path)
    golden_dir = Path(golden_dir) if golden_dir is not None else default_dir(model_path)
    meta_path = golden_dir / META_FILE
    if not meta_path.is_file():
        raise MCUForgeError(f"no goldens at {golden_dir}: run `mcuforge golden record {model_path}` first")
    meta = json.loads(meta_path.read_text())
    data = model_path.read_bytes() if model_path.is_file() else b""
    model = read_tflite(model_path)
    if _sha256(data) != meta["model_sha256"]:
        raise MCUForgeError(
            f"golden mismatch for {model_path}: the model's bytes changed since the goldens were recorded "
            f"(sha256 {_sha256(data)[:16]}, recorded {meta['model_sha256'][:16]}); re-record if intended"
        )
    batch = load_array(golden_dir / INPUT_FILE)
    outputs = reference_emulator(model, data).run(batch)
    for i, actual in enumerate(outputs):
        expected = load_array(golden_dir / f"output_{i}.npy")
        if expected.shape != actual.shape or expected.dtype != actual.dtype:
            raise MCUForgeError(
                f"golden mismatch for {model_path} output {i}: expected {expected.dtype} {list(expected.shape)}, "
                f"got {actual.dtype} {list(actual.shape)}"
            )
        if expected.tobytes() != actual.tobytes():
            flat_e, flat_a = expected.reshape(len(expected), -1), actual.reshape(len(actual), -1)
            as_bits = np.dtype(f"u{expected.dtype.itemsize}")  # compares bit patterns, NaN included
            sample, element = np.argwhere(flat_e.view(as_bits) != flat_a.view(as_bits))[0]
            raise MCUForgeError(
                f"golden mismatch for {model_path}: input {sample} output {i} element {element}: "
                f"expected {flat_e[sample, element]}, got {flat_a[sample, element]}"
            )
    return GoldenResult(golden_dir, len(batch), outputs)
