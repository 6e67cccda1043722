"""Binarized (Larq) models: conversion with LCE's converter and its interpreter as the oracle.

Larq Compute Engine's converter turns a Keras model built with Larq's quantized
layers into a .tflite whose binary layers are LCE custom ops (LceQuantize,
LceBconv2d, LceDequantize, LceBMaxPool2d). TFLite Micro cannot run them; our
engine can, and LCE's own interpreter is the reference its outputs must equal.
That interpreter runs in the side environment `make setup` creates (see
lce_oracle.py), called in a subprocess.

    data = convert_keras(model)          # bytes of the .tflite
    outputs = run_lce(data, [batch])     # LCE's interpreter, one array per output
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mcuforge.deploy.tflite_model import TFLiteModel
from mcuforge.errors import MCUForgeError

LCE_OPS = ("LceQuantize", "LceBconv2d", "LceDequantize", "LceBMaxPool2d")
SIDE_ENV = ".venv-lce"
PYTHON_VARIABLE = "MCUFORGE_LCE_PYTHON"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_ORACLE_SCRIPT = Path(__file__).resolve().parent / "lce_oracle.py"


def lce_ops(model: TFLiteModel) -> tuple[str, ...]:
    """The LCE custom ops the model uses (empty for a plain TFLite model)."""
    return tuple(name for name in model.op_names if name in LCE_OPS)


def needs_our_engine_message(model: TFLiteModel) -> str:
    """Why TFLite Micro cannot run this model, and what runs it instead."""
    return (
        f"the model uses Larq Compute Engine ops ({', '.join(lce_ops(model))}), which TFLite Micro cannot run: "
        "build firmware with mcuforge's engine (`mcuforge firmware`, or `mcuforge run` on the spec)"
    )


def convert_keras(model) -> bytes:
    """The .tflite of a Keras (tf_keras) model with Larq layers, by LCE's converter (float I/O)."""
    try:
        import larq_compute_engine
    except ImportError as error:
        raise MCUForgeError(f"binarized models need Larq Compute Engine ({error}): run `make setup`") from error
    return bytes(larq_compute_engine.convert_keras_model(model))


def _interpreter_extension() -> Path:
    spec = importlib.util.find_spec("larq_compute_engine")
    if spec is None or not spec.submodule_search_locations:
        raise MCUForgeError("Larq Compute Engine is not installed: run `make setup`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "tflite" / "python"
    found = sorted(folder.glob("interpreter_wrapper_lite*.so"))
    if not found:
        raise MCUForgeError(f"Larq Compute Engine's interpreter is missing from {folder}: reinstall it with `make setup`")
    return found[0]


def _side_python() -> Path:
    override = os.environ.get(PYTHON_VARIABLE)
    python = Path(override) if override else _REPO_ROOT / SIDE_ENV / "bin" / "python"
    if not python.is_file():
        raise MCUForgeError(
            f"the LCE oracle's environment is missing ({python}): run `make setup`, or set {PYTHON_VARIABLE}"
        )
    return python


def run_lce(data: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of LCE's interpreter on `inputs` (one array per model input, batch dimension first)."""
    with tempfile.TemporaryDirectory(prefix="mcuforge-lce-") as folder:
        work = Path(folder)
        (work / "model.tflite").write_bytes(data)
        np.savez(work / "inputs.npz", *inputs)
        command = [str(_side_python()), str(_ORACLE_SCRIPT), str(_interpreter_extension())]
        command += [str(work / "model.tflite"), str(work / "inputs.npz"), str(work / "outputs.npz")]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise MCUForgeError(f"LCE's interpreter failed on the model: {last}")
        with np.load(work / "outputs.npz") as outputs:
            return [outputs[f"arr_{i}"] for i in range(len(outputs.files))]


