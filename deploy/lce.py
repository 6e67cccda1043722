"""Binarized (Larq) models: conversion with LCE's converter and its interpreter as the oracle.

Larq Compute Engine's converter turns a Keras model built with Larq's quantized
layers into a .tflite whose binary layers are LCE custom ops (LceQuantize,
LceBconv2d, LceDequantize, LceBMaxPool2d). TFLite Micro cannot run them; our
engine can, and LCE's own interpreter is the reference its outputs must equal.
That interpreter runs in the side environment `make setup` creates (see
lce_oracle.py), called in a subprocess.

LCE's interpreter runs the builtin float ops of such models (first and last
layers) with TFLite's optimized kernels, whose summation order differs from
TFLM's reference kernels in the last bits. The reference a device must equal
bit for bit is therefore composed op by op (`reference_outputs`): LCE ops by
LCE's interpreter, builtin ops by TFLM, each on the previous ops' outputs.

    data = convert_keras(model)                 # bytes of the .tflite
    outputs = run_lce(data, [batch])            # LCE's interpreter on the whole model
    expected = reference_outputs(data, [batch]) # LCE ops by LCE, builtin ops by TFLM
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
from mcuforge.deploy.tflm import ArenaUsage, Emulator
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
        "build firmware with mcuforge's engine (`mcuforge firmware build`, or `mcuforge run` on the spec)"
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


def run_lce(data: bytes, inputs: Sequence[np.ndarray], reference_bconv: bool = False) -> list[np.ndarray]:
    """Outputs of LCE's interpreter, one array per model output, samples stacked on a leading axis.

    `inputs`: one array per model input, a leading samples axis before the input's shape.
    reference_bconv: LCE's reference LceBconv2d kernel instead of its default optimized one.
    """
    with tempfile.TemporaryDirectory(prefix="mcuforge-lce-") as folder:
        work = Path(folder)
        (work / "model.tflite").write_bytes(data)
        np.savez(work / "inputs.npz", *inputs)
        command = [str(_side_python()), str(_ORACLE_SCRIPT), str(_interpreter_extension())]
        command += [str(work / "model.tflite"), str(work / "inputs.npz"), str(work / "outputs.npz")]
        command += ["reference"] if reference_bconv else []
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise MCUForgeError(f"LCE's interpreter failed on the model: {last}")
        with np.load(work / "outputs.npz") as outputs:
            return [outputs[f"arr_{i}"] for i in range(len(outputs.files))]


def _one_op_models(data: bytes) -> list[tuple[bool, bytes, list[int], list[int]]]:
    """Each op of the main graph as a model of its own: (is an LCE op, bytes, input tensors, output tensors)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = tree.subgraphs[0]
    codes = [code.customCode.decode() if code.customCode else "" for code in tree.operatorCodes]
    constant = {i for i, t in enumerate(graph.tensors) if t.buffer > 0 and tree.buffers[t.buffer].data is not None}
    pieces = []
    for op in list(graph.operators):
        inputs = [int(i) for i in op.inputs if i >= 0 and i not in constant]
        graph.operators, graph.inputs, graph.outputs = [op], inputs, [int(i) for i in op.outputs]
        builder = flatbuffers.Builder(len(data) + 1024)
        builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
        pieces.append((codes[op.opcodeIndex] in LCE_OPS, bytes(builder.Output()), inputs, graph.outputs))
    return pieces


def reference_outputs(data: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs with each LCE op run by LCE's interpreter and each builtin op by TFLM.

    Same arguments and result as run_lce. One LCE call per LCE op (all samples at once).
    """
    from mcuforge.deploy.tflite_model import parse_tflite
    from tflite_micro.python.tflite_micro import runtime

    graph = parse_tflite(data, "the binarized model").main
    values = dict(zip(graph.inputs, inputs))
    for is_lce, piece, op_inputs, op_outputs in _one_op_models(data):
        arrays = [values[i] for i in op_inputs]
        if is_lce:
            results = run_lce(piece, arrays)
        else:
            interpreter = runtime.Interpreter.from_bytes(piece)
            per_sample = []
            for n in range(len(arrays[0])):
                for index, array in enumerate(arrays):
                    interpreter.set_input(array[n], index)
                interpreter.invoke()
                per_sample.append([np.array(interpreter.get_output(i), copy=True) for i in range(len(op_outputs))])
            results = [np.stack([sample[i] for sample in per_sample]) for i in range(len(op_outputs))]
        values.update(zip(op_outputs, results))
    return [values[i] for i in graph.outputs]


class LceEmulator(Emulator):
    """Emulator for models with LCE ops, which TFLM cannot load (so TFLM's interpreter is never
    created): outputs from reference_outputs. They have no TFLM arena: our engine's is measured by
    `mcuforge engine stats` and checked against the board by the firmware build."""

    def __init__(self, model: TFLiteModel, data: bytes) -> None:  # not Emulator's: it would load TFLM
        self.model = model
        self._data = data
        if len(model.main.inputs) != 1:
            raise MCUForgeError(f"{model.source} has {len(model.main.inputs)} inputs; the emulator feeds single-input models only")

    def invoke(self, sample: np.ndarray) -> list[np.ndarray]:
        """One sample of the input's shape; every output, of its own shape."""
        return [output[0] for output in reference_outputs(self._data, [sample[None]])]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """A batch (leading axis); each output batched, as Emulator.run."""
        shape = self.inputs[0].shape
        outputs = reference_outputs(self._data, [batch.reshape(-1, *shape)])
        return [np.concatenate(list(output)) for output in outputs]

    def arena_usage(self) -> ArenaUsage | None:
        """None: TFLM cannot allocate these models (see the class docstring for our engine's arena)."""
        return None


def reference_emulator(model: TFLiteModel, data: bytes) -> Emulator:
    """The emulator that defines a model's expected outputs: TFLM, or LceEmulator for models with LCE ops."""
    return LceEmulator(model, data) if lce_ops(model) else Emulator(model, data)
