"""One-op float32 models written straight from the TFLite schema, for the engine's float kernel tests.

The converter would take seconds per case and pick its own shapes; writing the
flatbuffer takes milliseconds and reaches every option (padding, strides,
dilations, activations, absent bias, broadcasting) on random shapes. TFLM's
host interpreter (its float reference kernels) is the oracle, as for int8.

    model = one_op_model("ADD", [Tensor((1, 3)), Tensor((3,), values)], Tensor((1, 3)), {"fusedActivationFunction": 1})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Schema TensorType values of the types used here.
TENSOR_TYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.int8): 9}
# Each op's BuiltinOptions table name (schema class <name>T).
OPTIONS = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions", "FULLY_CONNECTED": "FullyConnectedOptions",
    "MAX_POOL_2D": "Pool2DOptions", "AVERAGE_POOL_2D": "Pool2DOptions", "SOFTMAX": "SoftmaxOptions",
    "ADD": "AddOptions", "MUL": "MulOptions", "RESHAPE": "ReshapeOptions", "QUANTIZE": None, "DEQUANTIZE": None,
}


@dataclass(frozen=True)
class Tensor:
    """A tensor of the model: a graph input when `values` is None, else a constant; quantized when scale is set."""

    shape: tuple[int, ...]
    values: np.ndarray | None = None
    dtype: Any = np.float32
    scale: float | None = None
    zero_point: int = 0


def one_op_model(op: str, inputs: list[Tensor | None], output: Tensor, options: dict[str, Any] | None = None) -> bytes:
    """A .tflite of the single builtin `op` (None in `inputs`: an absent optional input, index -1)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = getattr(schema.BuiltinOperator, op)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT()]  # buffer 0: the schema's empty sentinel
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs = [], []

    def add(tensor: Tensor, graph_input: bool) -> int:
        t = schema.TensorT()
        t.shape = np.array(tensor.shape, np.int32)
        t.type = TENSOR_TYPES[np.dtype(tensor.dtype)]
        t.name = f"t{len(graph.tensors)}".encode()
        t.buffer = 0
        if tensor.values is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(tensor.values, tensor.dtype).tobytes(), np.uint8)
            model.buffers.append(buffer)
            t.buffer = len(model.buffers) - 1
        if tensor.scale is not None:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale = [float(tensor.scale)]
            t.quantization.zeroPoint = [int(tensor.zero_point)]
        graph.tensors.append(t)
        if graph_input and tensor.values is None:
            graph.inputs.append(len(graph.tensors) - 1)
        return len(graph.tensors) - 1

    operator = schema.OperatorT()
    operator.opcodeIndex = 0
    operator.inputs = [-1 if t is None else add(t, True) for t in inputs]
    operator.outputs = [add(output, False)]
    if OPTIONS[op] is not None:
        table = getattr(schema, OPTIONS[op] + "T")()
        for name, value in (options or {}).items():
            assert hasattr(table, name), f"{OPTIONS[op]} has no field {name}"
            setattr(table, name, value)
        operator.builtinOptionsType = getattr(schema.BuiltinOptions, OPTIONS[op])
        operator.builtinOptions = table
    graph.operators = [operator]
    graph.outputs = operator.outputs
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
