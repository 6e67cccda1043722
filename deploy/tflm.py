"""The TFLM host interpreter (the `tflite-micro` package): runs a model as the device will.

TFLM reports problems (a missing op, a kernel that rejects a type) and its arena
use only as text on the C stderr, so this module captures file descriptor 2
around each call and turns what it says into MCUForgeError messages and
ArenaUsage figures.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mcuforge.deploy.tflite_model import Tensor, TFLiteModel
from mcuforge.errors import MCUForgeError

# The host has memory to spare; the figure TFLM needs is measured, not this.
HOST_ARENA_BYTES = 32 * 1024 * 1024
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([^']+)'")
_NO_REGISTRATION = re.compile(r"Failed to get registration from op code (\S+)")
_FAILED_NODE = re.compile(r"Node (\S+) \(number (\d+)f?\) failed to (prepare|invoke)")  # older TFLM prints "(number 2f)"
_ARENA_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


@contextlib.contextmanager
def captured_stderr(lines: list[str]) -> Iterator[None]:
    """Collect what C code writes to fd 2 into `lines` (filled when the block exits)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines() if line.strip())


@dataclass(frozen=True)
class ArenaUsage:
    """TFLM's RecordingMicroAllocator figures, in bytes.

    head: the non-persistent section the memory planner lays activations and
    kernel scratch buffers into; tail: persistent runtime structures (tensor
    and node records, kernel op data such as per-channel multipliers);
    total = head + tail, the arena TFLM used on this (64-bit) host.
    """

    total: int
    head: int
    tail: int


def _explain_failure(model: TFLiteModel, lines: list[str]) -> str:
    problems = []
    graph = model.main
    versions = {name: version for name, version in model.opcodes}
    for line in lines:
        if match := _MISSING_OP.search(line):
            problems.append(f"op {match[1]} (version {versions.get(match[1], '?')}) is not in TFLM")
        elif (match := _NO_REGISTRATION.search(line)) and match[1] == "CUSTOM":
            custom = sorted({(op.opcode, op.version) for g in model.subgraphs for op in g.operators if op.is_custom})
            problems += [f"custom op {name} (version {version}) is not registered in TFLM" for name, version in custom]
        elif match := _FAILED_NODE.search(line):
            index = int(match[2])
            op = graph.operators[index] if index < len(graph.operators) else None
            detail = f"{op.opcode} version {op.version}" if op else match[1]
            problems.append(f"node {index} ({detail}) failed to {match[3]}")
    kernel_messages = [
        line
        for line in lines
        if not (_MISSING_OP.search(line) or _FAILED_NODE.search(line) or _NO_REGISTRATION.search(line) or line.startswith("WARNING"))
    ]
    if kernel_messages:
        problems.append("TFLM says: " + " / ".join(kernel_messages[:4]))
    return "; ".join(problems) or "no reason given"


class Emulator:
    """A model loaded in the TFLM host interpreter, checked to run, ready for inputs."""

    def __init__(self, model: TFLiteModel, data: bytes) -> None:
        from tflite_micro.python.tflite_micro import runtime

        self.model = model
        lines: list[str] = []
        try:
            with captured_stderr(lines):
                self._interpreter = runtime.Interpreter.from_bytes(data, arena_size=HOST_ARENA_BYTES)
        except (RuntimeError, ValueError):
            raise MCUForgeError(f"TFLM cannot run {model.source}: {_explain_failure(model, lines)}") from None
        if len(model.main.inputs) != 1:
            raise MCUForgeError(
                f"{model.source} has {len(model.main.inputs)} inputs; the emulator feeds single-input models only"
            )

    @property
    def inputs(self) -> list[Tensor]:
        return self.model.main.input_tensors

    @property
    def outputs(self) -> list[Tensor]:
        return self.model.main.output_tensors

    def invoke(self, sample: np.ndarray) -> list[np.ndarray]:
        """Run one sample (already of the input's shape and dtype) from a fresh state; returns every output.

        The state is reset first so that stateful models (LSTM) treat each sample alone.
        """
        lines: list[str] = []
        try:
            with captured_stderr(lines):
                self._interpreter.reset()
                self._interpreter.set_input(sample, 0)
                self._interpreter.invoke()
        except (RuntimeError, ValueError):
            raise MCUForgeError(f"TFLM failed to run {self.model.source}: {_explain_failure(self.model, lines)}") from None
        return [np.array(self._interpreter.get_output(i), copy=True) for i in range(len(self.outputs))]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run a batch (leading axis) one sample at a time, as a device would; returns each output batched."""
        shape = self.inputs[0].shape
        results = [self.invoke(sample.reshape(shape)) for sample in batch]
        return [np.concatenate([r[i] for r in results]) for i in range(len(self.outputs))]

    def arena_usage(self) -> ArenaUsage:
        """The arena TFLM used, from its allocation recording (after one inference on zeros)."""
        tensor = self.inputs[0]
        self.invoke(np.zeros(tensor.shape, dtype=tensor.numpy_dtype))
        lines: list[str] = []
        with captured_stderr(lines):
            self._interpreter.print_allocations()
        figures = {m[1]: int(m[2]) for line in lines if (m := _ARENA_LINE.search(line))}
        if set(figures) != {"total", "head", "tail"}:
            raise MCUForgeError(f"TFLM's allocation recording for {self.model.source} had no arena figures: {lines[:3]}")
        return ArenaUsage(**figures)


def prepare_input(x: np.ndarray, tensor: Tensor, what: str = "input") -> np.ndarray:
    """Shape `x` as a batch for `tensor`, quantizing float data to an integer input.

    Integer arrays must match the input's dtype exactly (they are fed as they
    are); float arrays are quantized with the input's scale and zero point.
    Accepted shapes: one sample (the input's shape without its batch axis) or
    N samples along a leading axis; axes of size 1 may be left out or added
    (upstream test arrays often drop a trailing channel axis).
    """
    x = np.asarray(x)
    sample_shape = tuple(tensor.shape[1:] if tensor.shape and tensor.shape[0] == 1 else tensor.shape)
    if _squeezed(x.shape) == _squeezed(sample_shape):
        x = x.reshape((1, *sample_shape))
    elif x.ndim >= 1 and _squeezed(x.shape[1:]) == _squeezed(sample_shape):
        x = x.reshape((len(x), *sample_shape))
    else:
        raise MCUForgeError(
            f"{what} has shape {list(x.shape)}, but the model's input {tensor.name!r} has shape {list(tensor.shape)}: "
            f"pass an array of shape {list(sample_shape)} or [N, {', '.join(map(str, sample_shape))}]"
        )
    target = tensor.numpy_dtype
    if x.dtype == target:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if np.issubdtype(target, np.floating):
            return x.astype(target)
        if tensor.quantization is not None:
            return quantize(x, tensor)
    raise MCUForgeError(
        f"{what} has dtype {x.dtype}, but the model's input {tensor.name!r} is {tensor.dtype}: "
        f"pass {tensor.dtype} values as they are, or float values to be quantized"
    )


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def quantize(x: np.ndarray, tensor: Tensor) -> np.ndarray:
    """Float to the tensor's integer type: round(x / scale) + zero_point, saturated."""
    q = tensor.quantization
    info = np.iinfo(tensor.numpy_dtype)
    values = np.round(np.asarray(x, dtype=np.float64) / q.scale) + q.zero_point
    return np.clip(values, info.min, info.max).astype(tensor.numpy_dtype)


def dequantize(values: np.ndarray, tensor: Tensor) -> np.ndarray:
    """Integer output to float: scale * (q - zero_point); float outputs pass through."""
    if tensor.quantization is None or np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    q = tensor.quantization
    return (q.scale * (values.astype(np.float64) - q.zero_point)).astype(np.float32)
