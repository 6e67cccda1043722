"""Models of Larq Compute Engine's custom ops, written directly with the TFLite schema.

LCE's converter only emits its ops from trained Keras graphs; these one-op
(or quantize-then-op) models reach every option the kernels take (padding
modes, strides, dilations, output types, activations) on random shapes, and
LCE's own interpreter (the oracle) runs them as it runs converted models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

_CUSTOM = 32
_TYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.int8): 9}


@dataclass
class Graph:
    """Tensors, ops and constants of one subgraph, packed by `model`."""

    tensors: list = field(default_factory=list)
    buffers: list = field(default_factory=lambda: [b""])
    ops: list = field(default_factory=list)
    codes: list = field(default_factory=list)

    def tensor(self, shape: Sequence[int], dtype, data: np.ndarray | None = None, quant: tuple[float, int] | None = None) -> int:
        self.tensors.append((tuple(int(n) for n in shape), np.dtype(dtype), len(self.buffers) if data is not None else 0, quant))
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data, dtype=dtype).tobytes())
        return len(self.tensors) - 1

    def op(self, custom_code: str, inputs: Sequence[int], outputs: Sequence[int], options: dict | None = None) -> None:
        if custom_code not in self.codes:
            self.codes.append(custom_code)
        self.ops.append((self.codes.index(custom_code), list(inputs), list(outputs), options))

    def model(self, inputs: Sequence[int], outputs: Sequence[int]) -> bytes:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
        from flatbuffers import flexbuffers

        model = schema.ModelT()
        model.version = 3
        model.operatorCodes = []
        for code in self.codes:
            opcode = schema.OperatorCodeT()
            opcode.builtinCode = opcode.deprecatedBuiltinCode = _CUSTOM
            opcode.customCode = code
            opcode.version = 1
            model.operatorCodes.append(opcode)
        graph = schema.SubGraphT()
        graph.tensors = []
        for index, (shape, dtype, buffer, quant) in enumerate(self.tensors):
            t = schema.TensorT()
            t.shape, t.type, t.buffer, t.name = list(shape), _TYPES[dtype], buffer, f"t{index}"
            if quant is not None:
                t.quantization = schema.QuantizationParametersT()
                t.quantization.scale, t.quantization.zeroPoint = [quant[0]], [quant[1]]
            graph.tensors.append(t)
        graph.inputs, graph.outputs, graph.operators = list(inputs), list(outputs), []
        for opcode_index, op_inputs, op_outputs, options in self.ops:
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = opcode_index, op_inputs, op_outputs
            if options is not None:
                op.customOptions = list(flexbuffers.Dumps(options))
            graph.operators.append(op)
        model.subgraphs = [graph]
        model.buffers = []
        for data in self.buffers:
            buffer = schema.BufferT()
            buffer.data = list(data) if data else None
            model.buffers.append(buffer)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def words(channels: int) -> int:
    return (channels + 31) // 32


def packed_filter(rng: np.random.Generator, out_c: int, fh: int, fw: int, channels_in: int) -> np.ndarray:
    """Random +1/-1 filters packed as LCE stores them: OHWI, bits past channels_in zero."""
    bits = rng.integers(0, 2, size=(out_c, fh, fw, words(channels_in) * 32), dtype=np.uint64)
    bits[..., channels_in:] = 0
    weights = (bits.reshape(out_c, fh, fw, -1, 32) << np.arange(32, dtype=np.uint64)).sum(axis=-1)
    return weights.astype(np.uint32).view(np.int32)


@dataclass(frozen=True)
class Bconv:
    """One LceBconv2d case: float input quantized by LceQuantize, then the binary convolution."""

    shape: tuple[int, int, int, int]  # N, H, W, channels_in
    out_c: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "VALID"
    pad_value: int = 1
    output: str = "float32"  # or int8, bitpacked
    activation: int = 0  # schema ActivationFunctionType: NONE, RELU, RELU_N1_TO_1, RELU6


def bconv_model(case: Bconv, rng: np.random.Generator) -> bytes:
    n, h, w, cin = case.shape
    fh, fw = case.kernel
    pad_same = case.padding == "SAME"
    out_h = -(-h // case.stride[0]) if pad_same else (h - (fh - 1) * case.dilation[0] - 1) // case.stride[0] + 1
    out_w = -(-w // case.stride[1]) if pad_same else (w - (fw - 1) * case.dilation[1] - 1) // case.stride[1] + 1
    g = Graph()
    x = g.tensor(case.shape, np.float32)
    packed = g.tensor((n, h, w, words(cin)), np.int32)
    g.op("LceQuantize", [x], [packed])
    filters = g.tensor((case.out_c, fh, fw, words(cin)), np.int32, packed_filter(rng, case.out_c, fh, fw, cin))
    if case.output == "bitpacked":
        k = fh * fw * cin
        thresholds = g.tensor((case.out_c,), np.int32, rng.integers(-2, k + 2, size=case.out_c).astype(np.int32))
        multiplier = bias = -1
        out = g.tensor((n, out_h, out_w, words(case.out_c)), np.int32)
    else:
        multiplier = g.tensor((case.out_c,), np.float32, rng.normal(0, 0.3, size=case.out_c).astype(np.float32))
        bias = g.tensor((case.out_c,), np.float32, rng.normal(0, 2.0, size=case.out_c).astype(np.float32))
        thresholds = -1
        quant = (float(rng.uniform(0.02, 0.5)), int(rng.integers(-20, 20))) if case.output == "int8" else None
        out = g.tensor((n, out_h, out_w, case.out_c), np.int8 if case.output == "int8" else np.float32, quant=quant)
    options = {
        "channels_in": cin, "dilation_height_factor": case.dilation[0], "dilation_width_factor": case.dilation[1],
        "fused_activation_function": case.activation, "pad_values": case.pad_value,
        "padding": 0 if pad_same else 1, "stride_height": case.stride[0], "stride_width": case.stride[1],
    }
    g.op("LceBconv2d", [packed, filters, multiplier, bias, thresholds], [out], options)
    return g.model([x], [out])


def quantize_model(shape: Sequence[int], dtype, quant: tuple[float, int] | None) -> bytes:
    g = Graph()
    x = g.tensor(shape, dtype, quant=quant)
    out = g.tensor((*shape[:-1], words(shape[-1])), np.int32)
    g.op("LceQuantize", [x], [out])
    return g.model([x], [out])


def dequantize_model(shape: Sequence[int], dtype, quant: tuple[float, int] | None) -> bytes:
    """Float input -> LceQuantize -> LceDequantize to `dtype`: the dequantize sees real packed rows."""
    g = Graph()
    x = g.tensor(shape, np.float32)
    packed = g.tensor((*shape[:-1], words(shape[-1])), np.int32)
    out = g.tensor(shape, dtype, quant=quant)
    g.op("LceQuantize", [x], [packed])
    g.op("LceDequantize", [packed], [out])
    return g.model([x], [out])
