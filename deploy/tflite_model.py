"""A typed, validating reader of .tflite flatbuffers.

Export, report, goldens and the accelerator checks all need the same facts
about a model (ops and their versions, tensors with shapes, dtypes and
quantization, constant data). They get them from here, so a corrupt or
truncated file is rejected once, with an error naming the file and the problem,
instead of crashing deep inside TFLM or the flatbuffers runtime.

The schema module comes from ai-edge-litert (the same generated code TensorFlow
ships), which imports in milliseconds rather than TensorFlow's seconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from mcuforge.errors import MCUForgeError

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
# The one dtype table of the project: TFLite tensor type name (as `Tensor.dtype`,
# the schema's TensorType name in lower case) -> numpy type.
NUMPY_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
    "complex64": np.complex64,
    "complex128": np.complex128,
}


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


@lru_cache(maxsize=None)
def tensor_type_names() -> dict[int, str]:
    """TFLite TensorType number -> dtype name as `Tensor.dtype` spells it (9 -> "int8"): the key into NUMPY_DTYPES."""
    return {code: name.lower() for code, name in _enum_names(_schema().TensorType).items()}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def scale(self) -> float:
        """The per-tensor scale; per-channel tensors have none."""
        if self.per_channel:
            raise MCUForgeError(f"tensor is quantized per channel ({len(self.scales)} scales): it has no single scale")
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        if self.per_channel:
            raise MCUForgeError(f"tensor is quantized per channel ({len(self.scales)} zero points)")
        return self.zero_points[0]


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    quantization: Quantization | None
    data: bytes
    is_variable: bool

    @property
    def is_constant(self) -> bool:
        """True for weights and biases: data stored in the model's flash image."""
        return bool(self.data)

    @property
    def numpy_dtype(self) -> np.dtype:
        try:
            return np.dtype(NUMPY_DTYPES[self.dtype])
        except KeyError:
            raise MCUForgeError(f"tensor {self.name!r} has dtype {self.dtype}, which numpy cannot hold") from None

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the tensor's values (sub-byte types such as int4 count whole bytes of their packed data)."""
        if self.data:
            return len(self.data)
        return self.elements * self.numpy_dtype.itemsize

    def array(self) -> np.ndarray:
        """The constant data as an array of the tensor's shape and dtype (int4 values unpacked into int8)."""
        if not self.data:
            raise MCUForgeError(f"tensor {self.name!r} is not a constant: it has no data")
        if self.dtype == "int4":
            return unpack_int4(self.data, self.elements).reshape(self.shape)
        return np.frombuffer(self.data, dtype=self.numpy_dtype).reshape(self.shape)


def int4_as_int8(data: bytes) -> bytes:
    """The same model with every constant INT4 tensor stored as int8 (the same values), for tools that cannot read INT4."""
    import flatbuffers

    schema = _schema()
    tree = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for graph in tree.subgraphs or []:
        for tensor in graph.tensors or []:
            buffer = tree.buffers[tensor.buffer]
            if tensor.type == schema.TensorType.INT4 and buffer.data is not None and len(buffer.data) > 0:
                count = int(np.prod(tensor.shape, dtype=np.int64))
                buffer.data = unpack_int4(np.asarray(buffer.data, np.uint8).tobytes(), count).view(np.uint8)
                tensor.type = schema.TensorType.INT8
    builder = flatbuffers.Builder(len(data) * 2 + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def unpack_int4(packed: bytes, count: int) -> np.ndarray:
    """`count` int4 values packed two a byte, value 2k in byte k's low nibble (as TFLM unpacks them), as int8."""
    nibbles = np.frombuffer(packed, np.uint8)
    pairs = np.stack([nibbles & 0xF, nibbles >> 4], axis=1).reshape(-1)[:count].astype(np.int8)
    return np.where(pairs > 7, pairs - 16, pairs).astype(np.int8)


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: object | None
    is_custom: bool


@dataclass(frozen=True)
class Subgraph:
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def tensor(self, index: int) -> Tensor | None:
        """The tensor at `index`, None for an omitted optional input (-1)."""
        return None if index < 0 else self.tensors[index]


@dataclass(frozen=True)
class TFLiteModel:
    source: str
    size: int
    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    opcodes: tuple[tuple[str, int], ...]

    @property
    def main(self) -> Subgraph:
        """Subgraph 0: the one TFLM invokes (others are control-flow bodies)."""
        return self.subgraphs[0]

    @cached_property
    def op_names(self) -> tuple[str, ...]:
        """Every op the model uses, across subgraphs, sorted: what an op resolver must register."""
        return tuple(sorted({op.opcode for graph in self.subgraphs for op in graph.operators}))

    @property
    def float_ops(self) -> tuple[str, ...]:
        """Ops that compute in float (read a float tensor), QUANTIZE/DEQUANTIZE at float I/O edges aside."""
        return tuple(
            sorted(
                {
                    op.opcode
                    for g in self.subgraphs
                    for op in g.operators
                    if op.opcode not in ("QUANTIZE", "DEQUANTIZE")
                    and any(t is not None and t.dtype in ("float32", "float16") for t in map(g.tensor, op.inputs))
                }
            )
        )

    @property
    def is_fully_integer(self) -> bool:
        """True when the I/O is int8/int16 quantized and no op computes in float (what NPUs and our engine need)."""
        graph = self.main
        for tensor in graph.input_tensors + graph.output_tensors:
            if tensor.dtype not in ("int8", "int16") or tensor.quantization is None:
                return False
        return not self.float_ops

    def require_integer(self, why: str) -> None:
        """Raise MCUForgeError when the model still computes in float; `why` says what needs int8."""
        if not self.is_fully_integer:
            floats = sorted({t.name for t in self.main.input_tensors + self.main.output_tensors if t.dtype.startswith("float")})
            detail = f" (float tensors: {', '.join(floats[:3])})" if floats else ""
            raise MCUForgeError(
                f"{self.source} is not a full-integer model{detail}, but {why} runs int8 only: "
                "convert it with `mcuforge convert` (quantization int8)"
            )


def read_tflite(path: Path | str) -> TFLiteModel:
    """Read and validate a .tflite file; MCUForgeError names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise MCUForgeError(f"model file not found: {path}")
    return parse_tflite(path.read_bytes(), str(path))


def parse_tflite(data: bytes, source: str = "<bytes>") -> TFLiteModel:
    """Parse flatbuffer bytes into a TFLiteModel; `source` names them in errors."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        found = data[4:8] if len(data) >= 8 else b""
        raise MCUForgeError(
            f"{source} is not a TFLite model: expected file identifier {FILE_IDENTIFIER.decode()} at byte 4, "
            f"found {found!r} ({len(data)} bytes). Convert the model with `mcuforge convert` first."
        )
    (root,) = struct.unpack_from("<I", data, 0)
    if root >= len(data):
        raise MCUForgeError(f"{source} is truncated or corrupt: root table offset {root} is past the end ({len(data)} bytes)")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # the flatbuffers runtime raises whatever a bad offset trips (struct.error, IndexError, ...)
        raise MCUForgeError(f"{source} is truncated or corrupt: the flatbuffer cannot be read ({type(exc).__name__}: {exc})") from None
    return _Validator(model, data, source, schema).build()


class _Validator:
    """Turns the schema's object tree into typed records, checking every index on the way."""

    def __init__(self, model, data: bytes, source: str, schema) -> None:
        self.model, self.data, self.source, self.schema = model, data, source, schema
        self.op_names = _enum_names(schema.BuiltinOperator)

    def fail(self, problem: str) -> MCUForgeError:
        return MCUForgeError(f"{self.source} is corrupt: {problem}")

    def build(self) -> TFLiteModel:
        model = self.model
        if model.version != SCHEMA_VERSION:
            raise self.fail(f"schema version {model.version}, expected {SCHEMA_VERSION}")
        if not model.subgraphs:
            raise self.fail("the model has no subgraphs")
        opcodes = tuple(self._opcode(i, code) for i, code in enumerate(model.operatorCodes or []))
        buffers = [self._buffer(i, b) for i, b in enumerate(model.buffers or [])]
        subgraphs = tuple(self._subgraph(i, g, opcodes, buffers) for i, g in enumerate(model.subgraphs))
        return TFLiteModel(
            source=self.source,
            size=len(self.data),
            version=model.version,
            description=_text(model.description),
            subgraphs=subgraphs,
            opcodes=opcodes,
        )

    def _opcode(self, index: int, code) -> tuple[str, int]:
        # Builtin codes above 127 live in builtinCode; older files only set the deprecated int8 field.
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == self.schema.BuiltinOperator.CUSTOM:
            return _text(code.customCode) or "CUSTOM", code.version
        if builtin not in self.op_names:
            raise self.fail(f"operator code {index} has unknown builtin op {builtin}")
        return self.op_names[builtin], code.version

    def _buffer(self, index: int, buffer) -> bytes:
        if buffer.offset > 1:  # models over 2 GB keep buffers after the flatbuffer
            end = buffer.offset + buffer.size
            if end > len(self.data):
                raise self.fail(f"buffer {index} spans bytes {buffer.offset}..{end}, past the end ({len(self.data)} bytes)")
            return bytes(self.data[buffer.offset : end])
        if buffer.data is None or len(buffer.data) == 0:
            return b""
        return np.asarray(buffer.data, dtype=np.uint8).tobytes()

    def _subgraph(self, g_index: int, graph, opcodes, buffers) -> Subgraph:
        tensors = tuple(self._tensor(g_index, i, t, buffers) for i, t in enumerate(graph.tensors or []))

        def check_indices(what: str, indices, optional: bool) -> tuple[int, ...]:
            result = tuple(int(i) for i in (indices if indices is not None else []))
            for i in result:
                if not (0 <= i < len(tensors) or (optional and i == -1)):
                    raise self.fail(f"subgraph {g_index}: {what} refers to tensor {i}, but there are {len(tensors)}")
            return result

        operators = []
        for o_index, op in enumerate(graph.operators or []):
            if not 0 <= op.opcodeIndex < len(opcodes):
                raise self.fail(f"subgraph {g_index} operator {o_index} uses opcode {op.opcodeIndex}, but there are {len(opcodes)}")
            name, version = opcodes[op.opcodeIndex]
            operators.append(
                Operator(
                    index=o_index,
                    opcode=name,
                    version=version,
                    inputs=check_indices(f"operator {o_index} ({name}) input", op.inputs, optional=True),
                    outputs=check_indices(f"operator {o_index} ({name}) output", op.outputs, optional=False),
                    options=op.builtinOptions,
                    is_custom=name not in self.op_names.values(),
                )
            )
        return Subgraph(
            name=_text(graph.name),
            tensors=tensors,
            operators=tuple(operators),
            inputs=check_indices("input", graph.inputs, optional=False),
            outputs=check_indices("output", graph.outputs, optional=False),
        )

    def _tensor(self, g_index: int, index: int, tensor, buffers) -> Tensor:
        name = _text(tensor.name)
        if not 0 <= tensor.buffer < max(len(buffers), 1):
            raise self.fail(f"subgraph {g_index} tensor {index} ({name}) uses buffer {tensor.buffer}, but there are {len(buffers)}")
        if tensor.type not in tensor_type_names():
            raise self.fail(f"tensor {name!r} has unknown type {tensor.type}")
        shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else []))
        signature = tuple(int(d) for d in tensor.shapeSignature) if tensor.shapeSignature is not None else shape
        result = Tensor(
            index=index,
            name=name,
            shape=shape,
            shape_signature=signature,
            dtype=tensor_type_names()[tensor.type],
            quantization=_quantization(tensor.quantization),
            data=buffers[tensor.buffer] if buffers else b"",
            is_variable=bool(tensor.isVariable),
        )
        if result.data and result.dtype in NUMPY_DTYPES and result.nbytes != result.elements * result.numpy_dtype.itemsize:
            raise self.fail(
                f"tensor {name!r} of shape {list(shape)} and dtype {result.dtype} needs "
                f"{result.elements * result.numpy_dtype.itemsize} bytes, its buffer holds {len(result.data)}"
            )
        return result


def _quantization(params) -> Quantization | None:
    if params is None or params.scale is None or len(params.scale) == 0:
        return None
    scales = tuple(float(s) for s in params.scale)
    zero_points = tuple(int(z) for z in params.zeroPoint) if params.zeroPoint is not None else (0,) * len(scales)
    return Quantization(scales, zero_points, int(params.quantizedDimension))


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
