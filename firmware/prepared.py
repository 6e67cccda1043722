"""Prepared models: the engine's prepare and planner run once on the host, the device runs a const image.

The host build of the engine loads the `.tflite` with its op-data records
prepared for flash (per-channel requantization tables included) and writes
everything eval reads as one image (runtime/mf_prepared.h has the format):
op sequence, op-data, arena offsets, constants, I/O descriptors, a format
version and a checksum. A firmware links runtime/mf_prepared.c (no flatbuffer
reader, no planner, no prepare) and gives it an arena of `arena_bytes`.

    >>> image = prepared_image(Path("model.tflite").read_bytes())   # doctest: +SKIP
    >>> c_source = image_source(image)                                # the const image, image.arena_bytes
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

from mcuforge.firmware.engine import (
    DEFAULT_ARENA_BYTES, KERNELS_DIR, MF_OK, Engine, EngineError, aligned_copy, Fault, library, status_name,
)

IMAGE_SYMBOL = "mf_model_image"


@dataclass(frozen=True)
class PreparedImage:
    """A prepared image's bytes and the arena (activations, kernel scratch) it runs in."""

    data: bytes
    arena_bytes: int


class _Runner(ctypes.Structure):
    _fields_ = [("image", ctypes.c_void_p), ("arena", ctypes.c_void_p)]


# mf_kernel.h's build choices (MF_CHOICE_*) by name: narrow 3x3 depthwise layers take the channel-major loop.
NARROW_DEPTHWISE_CHANNEL_MAJOR = 1


def prepared_image(model: bytes, kernels: str = "dsp", source: str = "model", choices: int = 0) -> PreparedImage:
    """The prepared image of `model` for the kernel set the firmware links ("portable" or "dsp").

    Records differ between kernel sets (the DSP kernels choose their loops and
    want per-channel tables), so the image is made by the same set's prepare.
    choices: the build's MF_CHOICE_* bits (NARROW_DEPTHWISE_CHANNEL_MAJOR, chosen
    by firmware/code_budget.py); 0 keeps the kernels' own (fastest) loops.
    """
    lib = library(kernels)
    model_buffer, model_address = aligned_copy(bytes(model))
    arena = (ctypes.c_uint8 * DEFAULT_ARENA_BYTES)()
    for attempt in range(2):  # the engine names the arena it needs when the first one is short
        size = ctypes.c_size_t()
        fault = Fault()
        status = lib.mf_prepare_image(model_address, len(model), ctypes.addressof(arena), len(arena), choices, None, 0,
                                      ctypes.byref(size), ctypes.byref(fault))
        if status == MF_OK or status_name(status) != "MF_ERR_ARENA_TOO_SMALL" or attempt == 1:
            break
        arena = (ctypes.c_uint8 * fault.arena_needed)()
    if status != MF_OK:
        Engine(model, source=source, kernels=kernels)  # raises the interpreter's own message for what it refuses
        raise EngineError(
            f"{source} cannot be prepared ({status_name(status)}): an op without op-data reads per-channel scales; "
            "build the firmware with --interpreter", status_name(status))
    out = (ctypes.c_uint8 * size.value)()
    status = lib.mf_prepare_image(model_address, len(model), ctypes.addressof(arena), len(arena), choices, ctypes.addressof(out),
                                  size.value, ctypes.byref(size), ctypes.byref(fault))
    if status != MF_OK:
        raise EngineError(f"writing the prepared image of {source} failed: {status_name(status)}", status_name(status))
    data = bytes(out)
    return PreparedImage(data, int(lib.mf_prepared_arena_bytes(ctypes.addressof(out), len(data))))


def image_source(image: PreparedImage, symbol: str = IMAGE_SYMBOL) -> str:
    """C source defining the image as a const, 8-byte aligned word array, and its arena size."""
    words = [int.from_bytes(image.data[i:i + 4], "little") for i in range(0, len(image.data), 4)]
    rows = ",\n".join("    " + ", ".join(f"0x{w:08x}u" for w in words[i:i + 8]) for i in range(0, len(words), 8))
    return (
        "/* Prepared model image (mcuforge.firmware.prepared): run it with mf_prepared.h. */\n"
        "#include <stddef.h>\n#include <stdint.h>\n\n"
        f"#define {symbol.upper()}_ARENA_BYTES {image.arena_bytes}u\n"
        "#if defined(__GNUC__)\n__attribute__((aligned(8)))\n#endif\n"
        f"const uint32_t {symbol}[{len(words)}] = {{\n{rows}\n}};\n"
        f"const size_t {symbol}_bytes = {len(image.data)}u;\n"
        f"const size_t {symbol}_arena_bytes = {image.arena_bytes}u;\n"
    )


def kernel_list(model: bytes) -> str:
    """A kernel list (-DMF_KERNEL_LIST, format of kernels/mf_kernel_list.h) of just the kernels the model's ops
    run, so a firmware links only their eval functions (and no soft-float double: prepare is not linked).
    An op whose input 0 is float32 runs its MF_FLOAT_KERNEL line where the list has one (mf_kernel_code);
    a DEPTHWISE_CONV_2D feeding the FULLY_CONNECTED after it adds the fused kernel that may run the two."""
    from mcuforge.deploy.tflite_model import parse_tflite

    lines = (KERNELS_DIR / "mf_kernel_list.h").read_text().splitlines()
    keys = {m[1]: line for line in lines if (m := re.match(r"MF_KERNEL\((MF_OP_\w+|MF_FLOAT_KERNEL\(MF_OP_\w+\)),", line))}
    graph = parse_tflite(model, "model").main
    wanted = set()
    for op, following in zip(graph.operators, [*graph.operators[1:], None]):
        first = graph.tensor(op.inputs[0]) if op.inputs else None
        float_key = f"MF_FLOAT_KERNEL(MF_OP_{op.opcode})"
        wanted.add(float_key if first is not None and first.dtype == "float32" and float_key in keys else f"MF_OP_{op.opcode}")
        if op.opcode == "DEPTHWISE_CONV_2D" and following is not None and following.opcode == "FULLY_CONNECTED" and \
                following.inputs[:1] == op.outputs[:1]:
            wanted.add("MF_OP_DEPTHWISE_FC")  # the engine may run the pair as one op (kernels/mf_depthwise_fc.h)
    return "".join(f"{line}\n" for key, line in keys.items() if key in wanted)


def eval_list(image: PreparedImage) -> str:
    """A runner table (-DMF_EVAL_LIST, mf_prepare.h) of the eval functions the image's ops name: the
    variant of each affine op that prepare chose, so a firmware links no other variant (nor the
    kernels' dispatching evals)."""
    lib = library()
    buffer, address = aligned_copy(image.data)
    length = lib.mf_prepared_eval_list(address, len(image.data), None, 0)
    if length == 0:
        raise EngineError("the prepared image names a kernel this engine lacks", "MF_ERR_BAD_MODEL")
    text = ctypes.create_string_buffer(length + 1)
    lib.mf_prepared_eval_list(address, len(image.data), text, length + 1)
    return text.value.decode()


# mf_prepared.h: the header words of the op count and the ops section, the words of an op before its tensor indices.
_IMAGE_OP_COUNT, _IMAGE_OPS, _OP_WORDS = 5, 9, 9
# mf_kernel.h: the code of the fused DEPTHWISE_CONV_2D + FULLY_CONNECTED op (kernels/mf_depthwise_fc.h).
FUSED_DEPTHWISE_FC = 2000


def op_kernel_codes(image: PreparedImage) -> list[int]:
    """The registry code (MF_EVAL_CODE of the kernel key) of each op the image runs, in order: a fused
    pair of graph ops is one op of code FUSED_DEPTHWISE_FC."""
    words = [int.from_bytes(image.data[i:i + 4], "little") for i in range(0, len(image.data), 4)]
    pos, codes = words[_IMAGE_OPS] // 4, []
    for _ in range(words[_IMAGE_OP_COUNT]):
        codes.append(words[pos] & 0xFFFFF)
        pos += _OP_WORDS + words[pos + 1] + words[pos + 2]
    return codes


class PreparedEngine(Engine):
    """A prepared image run by mf_prepared.c in a host library: `invoke` as Engine's."""

    _api = {"input_count": "mf_prepared_input_count", "input": "mf_prepared_input", "invoke": "mf_prepared_invoke",
            "output_count": "mf_prepared_output_count", "output": "mf_prepared_output"}

    def __init__(self, lib: ctypes.CDLL, image_address: int, image_size: int, source: str = "prepared model",
                 arena_bytes: int | None = None) -> None:
        self._lib = lib
        self.source = source
        size = arena_bytes if arena_bytes is not None else int(lib.mf_prepared_arena_bytes(image_address, image_size))
        self._arena = (ctypes.c_uint8 * max(size, 1))()
        self._runner = _Runner()
        self._handle = ctypes.addressof(self._runner)
        status = lib.mf_prepared_open(image_address, image_size, ctypes.addressof(self._arena), size, self._handle)
        if status != MF_OK:
            raise EngineError(f"{source}: the prepared image was refused ({status_name(status)})", status_name(status))

    @classmethod
    def from_image(cls, image: PreparedImage, kernels: str = "dsp", source: str = "prepared model") -> PreparedEngine:
        """The image run by the host engine library of kernel set `kernels`."""
        buffer, address = aligned_copy(image.data)
        engine = cls(library(kernels), address, len(image.data), source)
        engine._image_buffer = buffer
        return engine

    @property
    def arena_used(self) -> int:
        return len(self._arena)

    def close(self) -> None:
        self._handle = None
