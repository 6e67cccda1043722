"""Coral Edge TPU: a static compatibility check, the compiler, and running on a Dev Board or USB Accelerator.

The check follows Coral's published model requirements
(coral.ai/docs/edgetpu/models-intro): tensors fully 8-bit quantized, sizes fixed
at compile time, constant parameters, at most three dimensions larger than one
(only the innermost three may exceed 1), and the supported-op table with its
per-op limitations and minimum runtime versions. The compiler makes a single
Edge TPU segment: from the first op it can map up to the first op it cannot;
that op and everything after it run on the CPU even when they could map
("More than one subgraph is not supported"). So the report names the op that
ends the segment and what to change, before anyone compiles.

`edgetpu_compiler` does not install from this project's registries (Coral's apt
repository only); `compile_model` runs it when it is on PATH and otherwise says
how to install it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mcuforge.artifacts import write_bytes_atomic, write_json_atomic
from mcuforge.deploy.tflite_model import Operator, Subgraph, TFLiteModel, parse_tflite, read_tflite
from mcuforge.errors import MCUForgeError

DEFAULT_MIN_RUNTIME = 14  # what edgetpu_compiler 16 targets by default
COMPILER = "edgetpu_compiler"
COMPILER_TIMEOUT_S = 600
INSTALL_HINT = (
    "install it from Coral's apt repository on an x86-64 Debian/Ubuntu host "
    "(curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -; "
    'echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list; '
    "sudo apt-get update; sudo apt-get install edgetpu-compiler), or use Coral's web compiler in Colab; "
    "that repository is not reachable from this project's registries, so mcuforge cannot install it"
)
LIBEDGETPU_HINT = "install libedgetpu1-std from the same Coral apt repository (coral-edgetpu-stable)"
MAPPED = "Mapped to Edge TPU"
UNSUPPORTED = "Not mapped: breaks an Edge TPU rule"
AFTER_SEGMENT = "More than one subgraph is not supported"
_INTEGER_ACTIVATIONS = ("int8", "uint8")


@dataclass(frozen=True)
class Problem:
    """One broken rule: which, what exactly (values), and what to change."""

    rule: str
    detail: str
    fix: str


@dataclass(frozen=True)
class OpCheck:
    index: int
    op: str
    output: str
    status: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def on_edgetpu(self) -> bool:
        return self.status == MAPPED


@dataclass(frozen=True)
class CompatibilityReport:
    model: str
    min_runtime_version: int
    ops: list[OpCheck]
    segment_start: int | None
    segment_end: int | None
    notes: list[Problem]

    @property
    def mapped(self) -> int:
        return sum(op.on_edgetpu for op in self.ops)

    @property
    def on_cpu(self) -> int:
        return len(self.ops) - self.mapped

    @property
    def fully_mapped(self) -> bool:
        return self.on_cpu == 0

    @property
    def breaking_op(self) -> OpCheck | None:
        """The op that ends the Edge TPU segment (None when the segment reaches the end)."""
        return None if self.segment_end is None else self.ops[self.segment_end]

    def to_json(self) -> dict:
        return {**asdict(self), "mapped": self.mapped, "on_cpu": self.on_cpu}

    def text(self) -> str:
        lines = [f"Edge TPU compatibility of {Path(self.model).name} (runtime >= {self.min_runtime_version})", ""]
        lines += [f"{'#':>3}  {'op':<28} {'status':<45} output"]
        for op in self.ops:
            lines.append(f"{op.index:>3}  {op.op:<28} {op.status:<45} {op.output}")
            lines += [f"       - {p.rule}: {p.detail}\n         fix: {p.fix}" for p in op.problems]
        lines.append("")
        lines.append(f"ops on the Edge TPU: {self.mapped}; on the CPU: {self.on_cpu} (of {len(self.ops)})")
        if self.segment_start is None:
            lines.append("no op can map: the whole model runs on the CPU")
        elif self.breaking_op is not None:
            op = self.breaking_op
            lines.append(
                f"the Edge TPU segment is ops {self.segment_start}..{self.segment_end - 1}; it ends at op {op.index} "
                f"({op.op}, output {op.output!r}): that op and every op after it run on the CPU. Fix that op first."
            )
        else:
            lines.append(f"the Edge TPU segment is ops {self.segment_start}..{len(self.ops) - 1}")
        lines += [f"note - {p.rule}: {p.detail}\n       fix: {p.fix}" for p in self.notes]
        return "\n".join(lines) + "\n"


# --- the rules ------------------------------------------------------------------------------------

Check = Callable[[Subgraph, Operator], list[Problem]]


def _axes(graph: Subgraph, op: Operator, input_index: int, rank: int) -> list[int] | None:
    """The constant axis list of input `input_index`, normalized to 0..rank-1 (None when not constant)."""
    tensor = graph.tensor(op.inputs[input_index]) if len(op.inputs) > input_index else None
    if tensor is None or not tensor.is_constant:
        return None
    return sorted({int(a) % rank for a in tensor.array().reshape(-1)})


def _rank(graph: Subgraph, op: Operator) -> int:
    return len(graph.tensors[op.inputs[0]].shape)


def _no_fused_activation(graph: Subgraph, op: Operator) -> list[Problem]:
    from ai_edge_litert.schema_py_generated import ActivationFunctionType

    activation = getattr(op.options, "fusedActivationFunction", ActivationFunctionType.NONE)
    if activation == ActivationFunctionType.NONE:
        return []
    name = {v: k for k, v in vars(ActivationFunctionType).items() if not k.startswith("_")}.get(activation, activation)
    return [
        Problem(
            "no fused activation",
            f"{op.opcode} has fused activation {name}",
            f"apply the activation before the {op.opcode.lower()} as its own layer (the converter fuses an activation "
            f"that directly follows it), or drop it",
        )
    ]


def _concatenation(graph: Subgraph, op: Operator) -> list[Problem]:
    problems = _no_fused_activation(graph, op)
    inputs = [graph.tensor(i) for i in op.inputs]
    constants = [t for t in inputs if t is not None and t.is_constant]
    if constants:
        nonzero = [t.name for t in constants if (t.array() != (t.quantization.zero_points[0] if t.quantization else 0)).any()]
        if len(inputs) != 2 or nonzero:
            problems.append(
                Problem(
                    "concatenation with a constant",
                    f"{len(inputs)} inputs, {len(constants)} constant" + (f", not all zero: {', '.join(nonzero)}" if nonzero else ""),
                    "a constant input is allowed only as zero padding (exactly 2 inputs, the constant all zeros); "
                    "compute the constant part with a layer or concatenate it after the model",
                )
            )
    return problems


def _spatial_only(axes_of: Callable[[Subgraph, Operator], list[int] | None], what: str, fix: str) -> Check:
    """MEAN and PAD may work along x (width) and y (height) only: never batch or channels."""

    def check(graph: Subgraph, op: Operator) -> list[Problem]:
        axes = axes_of(graph, op)
        if axes is None:
            return []  # a computed axis list is reported by the constant-parameter rule
        rank = _rank(graph, op)
        spatial = set(range(1, rank - 1)) if rank >= 3 else set()
        outside = [a for a in axes if a not in spatial]
        if not outside:
            return []
        shape = list(graph.tensors[op.inputs[0]].shape)
        return [Problem(f"{op.opcode} along x/y only", f"{what} along axes {outside} of input {shape} (allowed: {sorted(spatial)})", fix)]

    return check


def _padded_axes(graph: Subgraph, op: Operator) -> list[int] | None:
    paddings = graph.tensor(op.inputs[1])
    if paddings is None or not paddings.is_constant:
        return None
    return [int(a) for a in (paddings.array().reshape(_rank(graph, op), 2) != 0).any(axis=1).nonzero()[0]]


def _not_batch(axis_of: Callable[[Subgraph, Operator], list[int] | None], what: str) -> Check:
    def check(graph: Subgraph, op: Operator) -> list[Problem]:
        axes = axis_of(graph, op)
        if axes is None or 0 not in axes:
            return []
        return [Problem(f"{op.opcode} not along batch", f"{what} along the batch dimension (axis 0)", f"keep batch 1 and {what} along another axis")]

    return check


def _reduce_axes(graph: Subgraph, op: Operator) -> list[int] | None:
    return _axes(graph, op, 1, _rank(graph, op))


def _option_axis(graph: Subgraph, op: Operator) -> list[int]:
    rank = len(graph.tensors[op.outputs[0]].shape)
    return [int(op.options.axis) % rank]


def _split_axis(graph: Subgraph, op: Operator) -> list[int] | None:
    return _axes(graph, op, 0, len(graph.tensors[op.inputs[1]].shape))


def _transpose_axes(graph: Subgraph, op: Operator) -> list[int] | None:
    perm = graph.tensor(op.inputs[1])
    if perm is None or not perm.is_constant:
        return None
    return [0] if int(perm.array().reshape(-1)[0]) != 0 else []


def _fully_connected(graph: Subgraph, op: Operator) -> list[Problem]:
    problems = []
    if getattr(op.options, "weightsFormat", 0) != 0:
        problems.append(Problem("fully-connected weights format", "shuffled weights format", "convert with the default weights format"))
    out = graph.tensors[op.outputs[0]]
    if sum(d > 1 for d in out.shape) > 1:
        problems.append(
            Problem(
                "fully-connected output is one-dimensional",
                f"output shape {list(out.shape)}",
                "flatten the input first so that the output is a vector [1, units] (no keep_num_dims over a sequence)",
            )
        )
    return problems


def _softmax(graph: Subgraph, op: Operator) -> list[Problem]:
    x = graph.tensors[op.inputs[0]]
    if sum(d > 1 for d in x.shape) <= 1 and x.elements <= 16000:
        return []
    return [
        Problem(
            "softmax on a 1-D input of at most 16,000 elements",
            f"input shape {list(x.shape)} ({x.elements} elements)",
            "flatten to a vector before the softmax, or run the softmax after the model",
        )
    ]


def _same_dilation(graph: Subgraph, op: Operator) -> list[Problem]:
    h, w = getattr(op.options, "dilationHFactor", 1), getattr(op.options, "dilationWFactor", 1)
    if h == w:
        return []
    return [Problem("same dilation in x and y", f"dilation {h} (y) and {w} (x)", "use the same dilation rate for height and width")]


def _strided_slice(graph: Subgraph, op: Operator) -> list[Problem]:
    problems = []
    strides = graph.tensor(op.inputs[3])
    if strides is not None and strides.is_constant and (strides.array() != 1).any():
        problems.append(Problem("strided slice strides of 1", f"strides {strides.array().tolist()}", "slice with stride 1 (a Slice), then subsample another way"))
    if op.options.ellipsisMask or op.options.newAxisMask:
        problems.append(Problem("strided slice masks", "ellipsis or new-axis mask set", "index explicitly, without ... or tf.newaxis"))
    return problems


def _resize(graph: Subgraph, op: Operator) -> list[Problem]:
    x = graph.tensors[op.inputs[0]]
    if len(x.shape) == 4 and x.shape[0] == 1:
        return []
    return [Problem("resize of a 3-D image", f"input shape {list(x.shape)}", "resize one image [1, H, W, C] at a time")]


def _prelu(graph: Subgraph, op: Operator) -> list[Problem]:
    alpha = graph.tensor(op.inputs[1])
    if alpha is None or not alpha.is_constant or sum(d > 1 for d in alpha.shape[:-1]) == 0:
        return []
    return [Problem("PReLU alpha per channel", f"alpha shape {list(alpha.shape)}", "share alpha across height and width (shared_axes=[1, 2])")]


def _quantize(graph: Subgraph, op: Operator) -> list[Problem]:
    source = graph.tensors[op.inputs[0]]
    if source.dtype in _INTEGER_ACTIVATIONS:
        return []
    return [
        Problem(
            "operation on an unsupported data type",
            f"QUANTIZE from {source.dtype}",
            "convert with integer input and output (inference_input_type/inference_output_type int8, mcuforge io_type int8)",
        )
    ]


# Coral's supported-op table: op -> (minimum Edge TPU runtime version, extra checks).
SUPPORTED_OPS: dict[str, tuple[int, tuple[Check, ...]]] = {
    "ADD": (10, ()),
    "AVERAGE_POOL_2D": (10, (_no_fused_activation,)),
    "CONCATENATION": (10, (_concatenation,)),
    "CONV_2D": (10, (_same_dilation,)),
    "DEPTHWISE_CONV_2D": (10, (_same_dilation,)),
    "EXPAND_DIMS": (13, ()),
    "FULLY_CONNECTED": (10, (_fully_connected,)),
    "HARD_SWISH": (14, ()),
    "L2_NORMALIZATION": (10, ()),
    "LOGISTIC": (10, ()),
    "MAXIMUM": (10, ()),
    "MAX_POOL_2D": (10, (_no_fused_activation,)),
    "MEAN": (12, (_spatial_only(_reduce_axes, "reduction", "average over height and/or width only (GlobalAveragePooling2D); mix channels with a 1x1 Conv2D instead"),)),
    "MINIMUM": (10, ()),
    "MUL": (10, ()),
    "PACK": (13, (_not_batch(_option_axis, "pack"),)),
    "PAD": (11, (_spatial_only(_padded_axes, "padding", "pad height and/or width only (ZeroPadding2D); grow channels with a 1x1 Conv2D"),)),
    "PRELU": (13, (_prelu,)),
    "QUANTIZE": (13, (_quantize,)),
    "REDUCE_MAX": (14, (_not_batch(_reduce_axes, "reduce"),)),
    "REDUCE_MIN": (14, (_not_batch(_reduce_axes, "reduce"),)),
    "RELU": (10, ()),
    "RELU6": (10, ()),
    "RELU_N1_TO_1": (10, ()),
    "RESHAPE": (10, ()),
    "RESIZE_BILINEAR": (10, (_resize,)),
    "RESIZE_NEAREST_NEIGHBOR": (10, (_resize,)),
    "RSQRT": (14, ()),
    "SLICE": (10, ()),
    "SOFTMAX": (10, (_softmax,)),
    "SPACE_TO_DEPTH": (10, ()),
    "SPLIT": (10, (_not_batch(_split_axis, "split"),)),
    "SQUARED_DIFFERENCE": (14, ()),
    "SQUEEZE": (10, ()),
    "STRIDED_SLICE": (10, (_strided_slice,)),
    "SUB": (10, ()),
    "SUM": (13, (_not_batch(_reduce_axes, "sum"),)),
    "TANH": (10, ()),
    "TRANSPOSE": (14, (_not_batch(_transpose_axes, "transpose"),)),
    "TRANSPOSE_CONV": (13, ()),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (14, ()),
}
# Inputs that must be constants at compile time (weights, biases, axes, paddings, shapes).
PARAMETER_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (0, 1, 3),
    "MEAN": (1,),
    "SUM": (1,),
    "REDUCE_MAX": (1,),
    "REDUCE_MIN": (1,),
    "PAD": (1,),
    "PRELU": (1,),
    "TRANSPOSE": (1,),
    "SLICE": (1, 2),
    "STRIDED_SLICE": (1, 2, 3),
    "SPLIT": (0,),
    "RESIZE_BILINEAR": (1,),
    "RESIZE_NEAREST_NEIGHBOR": (1,),
    "EXPAND_DIMS": (1,),
}


def _generic_problems(graph: Subgraph, op: Operator) -> list[Problem]:
    """The model-wide requirements, applied to the tensors this op reads and writes."""
    problems = []
    activations = [t for t in map(graph.tensor, op.inputs) if t is not None and not t.is_constant]
    activations += [graph.tensors[i] for i in op.outputs]
    exempt = {graph.tensors[op.inputs[0]].name} if op.opcode == "QUANTIZE" else set()  # _quantize reports its input
    floats = [f"{t.name!r} ({t.dtype})" for t in activations if t.dtype not in _INTEGER_ACTIVATIONS and t.name not in exempt]
    if floats:
        problems.append(
            Problem(
                "8-bit quantized tensors",
                f"not 8-bit: {', '.join(floats)}",
                "quantize the whole model to int8 with integer I/O (mcuforge convert, io_type int8, or quantization-aware training)",
            )
        )
    too_many = [f"{t.name!r} {list(t.shape)}" for t in activations if sum(d > 1 for d in t.shape[:-3]) > 0]
    if too_many:
        problems.append(
            Problem(
                "at most 3 dimensions larger than one",
                f"only the innermost 3 dimensions may exceed 1: {', '.join(too_many)}",
                "keep batch 1 and fold the extra dimension into height, width or channels",
            )
        )
    dynamic = [f"{t.name!r} {list(t.shape_signature)}" for t in activations if any(d < 0 for d in t.shape_signature[1:])]
    if dynamic:
        problems.append(
            Problem(
                "sizes fixed at compile time",
                f"dynamic size (-1) beyond the batch axis: {', '.join(dynamic)}",
                "give every dimension a fixed size (keras.Input(shape=(...)) without None)",
            )
        )
    for position in PARAMETER_INPUTS.get(op.opcode, ()):
        tensor = graph.tensor(op.inputs[position]) if position < len(op.inputs) else None
        if tensor is not None and not tensor.is_constant:
            problems.append(
                Problem(
                    "constant parameters",
                    f"input {position} ({tensor.name!r}) of {op.opcode} is computed at run time",
                    "make weights, biases and parameters constants of the model (use a Dense/Conv layer, "
                    "not a tensor fed from an input or another op)",
                )
            )
    return problems


def check_operator(graph: Subgraph, op: Operator, min_runtime: int) -> list[Problem]:
    """Every rule `op` breaks (empty when the Edge TPU can run it)."""
    if op.opcode not in SUPPORTED_OPS:
        return [
            Problem(
                "supported operation",
                f"{op.opcode} is not in the Edge TPU's supported-op table",
                f"replace {op.opcode} with supported ops, or move it to the end of the model so that only it runs on the CPU",
            )
        ]
    needed, checks = SUPPORTED_OPS[op.opcode]
    problems = _generic_problems(graph, op)
    if needed > min_runtime:
        problems.append(
            Problem(
                "runtime version",
                f"{op.opcode} needs Edge TPU runtime {needed}, the model targets {min_runtime}",
                f"compile with --min-runtime-version {needed} (and run it with a libedgetpu of that version or newer)",
            )
        )
    for check in checks:
        problems += check(graph, op)
    return problems


def check_model(model: TFLiteModel, min_runtime: int = DEFAULT_MIN_RUNTIME) -> CompatibilityReport:
    """Check every op of the main subgraph and place the single Edge TPU segment."""
    graph = model.main
    problems = [check_operator(graph, op, min_runtime) for op in graph.operators]
    start = next((i for i, found in enumerate(problems) if not found), None)
    end = None if start is None else next((i for i in range(start, len(problems)) if problems[i]), None)
    ops = []
    for op, found in zip(graph.operators, problems):
        if found:
            status = UNSUPPORTED
        elif end is None or op.index < end:  # no op before `start` is free of problems: start is the first such op
            status = MAPPED
        else:
            status = AFTER_SEGMENT
        output = graph.tensors[op.outputs[0]].name if op.outputs else ""
        ops.append(OpCheck(op.index, op.opcode, output, status, found))
    return CompatibilityReport(model.source, min_runtime, ops, start, end, _model_notes(model))


def _model_notes(model: TFLiteModel) -> list[Problem]:
    notes = []
    if len(model.subgraphs) > 1:
        notes.append(Problem("one subgraph", f"the model has {len(model.subgraphs)} subgraphs; only subgraph 0 can map", "avoid control flow (while/if)"))
    dynamic_batch = [t.name for t in model.main.input_tensors if t.shape_signature[:1] == (-1,)]
    if dynamic_batch:
        notes.append(
            Problem(
                "batch 1",
                f"inputs {', '.join(dynamic_batch)} have a dynamic batch size (signature -1 in axis 0)",
                "`mcuforge edgetpu compile` fixes the batch at 1 before compiling; to fix it at the source "
                "use keras.Input(shape, batch_size=1)",
            )
        )
    return notes


def check_file(path: Path | str, min_runtime: int = DEFAULT_MIN_RUNTIME) -> CompatibilityReport:
    return check_model(read_tflite(path), min_runtime)


# --- export: batch 1 -----------------------------------------------------------------------------


def static_batch(data: bytes, source: str = "<bytes>") -> bytes:
    """The model with every dynamic batch size (-1 in axis 0 of a shape signature) fixed at 1.

    Keras models convert with a dynamic batch; the Edge TPU delegate only takes
    static sizes. Other dynamic axes are left alone (the check reports them).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    parse_tflite(data, source)
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for graph in model.subgraphs:
        for tensor in graph.tensors or []:
            signature = tensor.shapeSignature
            if signature is not None and len(signature) and signature[0] == -1:
                signature[0] = 1
                tensor.shape[0] = 1
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --- the compiler --------------------------------------------------------------------------------

_SIZE = re.compile(r"^(?P<value>[\d.]+)(?P<unit>B|KiB|MiB|GiB)$")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_OPERATOR_ROW = re.compile(r"^(?P<op>[A-Z][A-Z0-9_]*)\s+(?P<count>\d+)\s+(?P<status>\S.*?)\s*$")


@dataclass(frozen=True)
class OperatorCount:
    op: str
    count: int
    status: str


@dataclass(frozen=True)
class CompiledModel:
    """One `Input model:` block of edgetpu_compiler's log."""

    input_model: str
    output_model: str
    on_chip_bytes: int
    on_chip_remaining_bytes: int
    off_chip_bytes: int
    edgetpu_subgraphs: int
    total_ops: int
    ops_on_edgetpu: int
    ops_on_cpu: int
    operators: list[OperatorCount]


@dataclass(frozen=True)
class CompileResult:
    compiler_version: str
    models: list[CompiledModel]
    outputs: list[str]
    log: str

    def to_json(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        lines = [f"edgetpu_compiler {self.compiler_version}"]
        for m in self.models:
            lines.append(
                f"{Path(m.output_model).name}: {m.ops_on_edgetpu} of {m.total_ops} ops on the Edge TPU, {m.ops_on_cpu} on the CPU; "
                f"parameters {m.on_chip_bytes:,} B on-chip ({m.on_chip_remaining_bytes:,} B free), {m.off_chip_bytes:,} B off-chip"
            )
            lines += [f"  {o.op:<28} {o.count:>4}  {o.status}" for o in m.operators if o.status != MAPPED]
        return "\n".join(lines) + "\n"


def report_section(check: CompatibilityReport, compiled: CompileResult) -> str:
    """Markdown for the model report: the static check's verdict beside what edgetpu_compiler reported."""
    lines = [f"## Coral Edge TPU (edgetpu_compiler {compiled.compiler_version}, runtime >= {check.min_runtime_version})", ""]
    lines.append(f"- static check: {check.mapped} of {len(check.ops)} ops map, {check.on_cpu} on the CPU")
    if check.breaking_op is not None:
        op = check.breaking_op
        lines += [f"  - the segment ends at op {op.index} ({op.op}): {p.rule}: {p.detail}. Fix: {p.fix}" for p in op.problems]
    for m in compiled.models:
        lines.append(
            f"- {Path(m.output_model).name}: {m.ops_on_edgetpu} of {m.total_ops} ops on the Edge TPU, {m.ops_on_cpu} on the CPU, "
            f"{m.edgetpu_subgraphs} Edge TPU subgraph(s); parameters {m.on_chip_bytes:,} B cached on-chip "
            f"({m.on_chip_remaining_bytes:,} B free), {m.off_chip_bytes:,} B streamed from off-chip memory"
        )
    return "\n".join(lines) + "\n"


def parse_size(text: str) -> int:
    """edgetpu_compiler's sizes ("3.42MiB", "7.75KiB", "0.00B") in bytes."""
    match = _SIZE.match(text.strip())
    if not match:
        raise MCUForgeError(f"cannot read the size {text!r} in edgetpu_compiler's log")
    return round(float(match["value"]) * _UNITS[match["unit"]])


def parse_compiler_log(log: str) -> tuple[str, list[CompiledModel]]:
    """The compiler version and one CompiledModel per `Input model:` block (one per segment)."""
    version = re.search(r"^Edge TPU Compiler version (\S+)", log, re.M)
    blocks = re.split(r"^(?=Input model: )", log, flags=re.M)[1:]
    if version is None or not blocks:
        first = log.strip().splitlines()[-1] if log.strip() else "no output"
        raise MCUForgeError(f"edgetpu_compiler produced no model: {first}")
    return version.group(1), [_parse_block(block) for block in blocks]


def _parse_block(block: str) -> CompiledModel:
    def field_(name: str) -> str:
        match = re.search(rf"^{re.escape(name)}:\s*(.+?)\s*$", block, re.M)
        if match is None:
            raise MCUForgeError(f"edgetpu_compiler's log has no {name!r} line: this compiler version is not supported")
        return match.group(1)

    table = re.split(r"^Operator\s+Count\s+Status\s*$", block, maxsplit=1, flags=re.M)
    rows = table[1].splitlines() if len(table) == 2 else []
    operators = [OperatorCount(m["op"], int(m["count"]), m["status"]) for m in map(_OPERATOR_ROW.match, rows) if m]
    total = int(field_("Total number of operations"))
    on_tpu = re.search(r"^Number of operations that will run on Edge TPU: (\d+)", block, re.M)
    mapped = int(on_tpu.group(1)) if on_tpu else total  # the compiler prints the counts only when some ops stay on the CPU
    return CompiledModel(
        input_model=field_("Input model"),
        output_model=field_("Output model"),
        on_chip_bytes=parse_size(field_("On-chip memory used for caching model parameters")),
        on_chip_remaining_bytes=parse_size(field_("On-chip memory remaining for caching model parameters")),
        off_chip_bytes=parse_size(field_("Off-chip memory used for streaming uncached model parameters")),
        edgetpu_subgraphs=int(field_("Number of Edge TPU subgraphs")),
        total_ops=total,
        ops_on_edgetpu=mapped,
        ops_on_cpu=total - mapped,
        operators=operators,
    )


def find_compiler() -> str:
    path = shutil.which(COMPILER)
    if path is None:
        raise MCUForgeError(f"{COMPILER} is not installed (not on PATH): {INSTALL_HINT}")
    return path


def compile_model(
    model_path: Path | str, out_dir: Path | str, min_runtime: int = DEFAULT_MIN_RUNTIME, num_segments: int = 1
) -> CompileResult:
    """Run edgetpu_compiler on `model_path` (batch fixed at 1); writes NAME_edgetpu.tflite, its log and NAME_edgetpu.json.

    With `num_segments` > 1 the compiler splits the model for pipelining into
    NAME_segment_K_of_N_edgetpu.tflite files. Nothing in `out_dir` changes unless
    the compiler succeeds.
    """
    compiler = find_compiler()
    if num_segments < 1:
        raise MCUForgeError(f"num_segments must be at least 1. Received: num_segments={num_segments}")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise MCUForgeError(f"model file not found: {model_path}")
    data = static_batch(model_path.read_bytes(), str(model_path))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".edgetpu.") as staging:
        staging = Path(staging)
        source = staging / "in" / model_path.name
        source.parent.mkdir()
        source.write_bytes(data)
        built = staging / "out"
        built.mkdir()
        command = [compiler, "--out_dir", str(built), "--min_runtime_version", str(min_runtime), "--show_operations"]
        if num_segments > 1:
            command += ["--num_segments", str(num_segments)]
        try:
            run = subprocess.run(command + [str(source)], capture_output=True, text=True, timeout=COMPILER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise MCUForgeError(f"{COMPILER} did not finish {model_path} within {COMPILER_TIMEOUT_S} s") from None
        log = run.stdout + run.stderr
        if run.returncode != 0:
            lines = log.strip().splitlines()
            raise MCUForgeError(f"{COMPILER} failed on {model_path}: {lines[-1] if lines else f'exit status {run.returncode}'}")
        version, models = parse_compiler_log(log)
        produced = sorted(built.glob("*_edgetpu.tflite"))
        if len(produced) != len(models):
            raise MCUForgeError(f"{COMPILER} reported {len(models)} model(s) but wrote {len(produced)} into its output directory")
        outputs = [str(write_bytes_atomic(out_dir / p.name, p.read_bytes())) for p in produced]
        for extra in built.glob("*.log"):
            write_bytes_atomic(out_dir / extra.name, extra.read_bytes())
    result = CompileResult(version, models, outputs, log)
    write_json_atomic(out_dir / f"{model_path.stem}_edgetpu.json", result.to_json())
    return result


# --- running -------------------------------------------------------------------------------------

RUNNER = Path(__file__).with_name("edgetpu_runner.py")
RUN_TIMEOUT_S = 120
REMOTE_DIR = "/tmp/mcuforge-edgetpu"
# USB ids of the Coral USB Accelerator: before its firmware is loaded, and after.
USB_ACCELERATOR_IDS = (("1a6e", "089a"), ("18d1", "9302"))


@dataclass(frozen=True)
class RunResult:
    """What the runner printed: `device` is "edgetpu" when the libedgetpu delegate was loaded, else "cpu"."""

    device: str
    notice: str | None
    outputs: list
    output_dtypes: list[str]
    latency_ms: float


def _runner_args(model: Path, cpu_model: Path | None, input_npy: Path | None, require_edgetpu: bool) -> list[str]:
    args = [str(model)]
    if cpu_model is not None:
        args += ["--cpu-model", str(cpu_model)]
    if input_npy is not None:
        args += ["--input", str(input_npy)]
    if require_edgetpu:
        args.append("--require-edgetpu")
    return args


def _result(run: subprocess.CompletedProcess, where: str) -> RunResult:
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        # the runner's own message; LiteRT may print "Exception ignored" noise after it
        reported = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        reason = (reported or lines or [f"exit status {run.returncode}"])[-1]
        raise MCUForgeError(f"the Edge TPU runner failed on {where}: {reason}")
    try:
        return RunResult(**json.loads(run.stdout.strip().splitlines()[-1]))
    except (ValueError, TypeError, IndexError):
        raise MCUForgeError(f"the Edge TPU runner on {where} printed no result: {run.stdout.strip()[-200:]!r}") from None


def run_local(model: Path | str, cpu_model: Path | str | None = None, input_npy: Path | str | None = None,
              require_edgetpu: bool = False) -> RunResult:  # fmt: skip
    """Run on this host: the Edge TPU when libedgetpu loads, else the CPU with a notice (in a subprocess with a timeout)."""
    paths = [Path(p) if p is not None else None for p in (model, cpu_model, input_npy)]
    for p in paths:
        if p is not None and not p.is_file():
            raise MCUForgeError(f"file not found: {p}")
    command = [sys.executable, str(RUNNER), *_runner_args(*paths, require_edgetpu)]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(f"the Edge TPU runner did not finish within {RUN_TIMEOUT_S} s: unplug and replug the accelerator") from None
    return _result(run, "this host")


def usb_accelerators(sysfs: Path | str = "/sys/bus/usb/devices") -> list[str]:
    """The sysfs names of attached Coral USB Accelerators."""
    found = []
    for device in sorted(Path(sysfs).glob("*")):
        try:
            ids = ((device / "idVendor").read_text().strip(), (device / "idProduct").read_text().strip())
        except OSError:
            continue
        if ids in USB_ACCELERATOR_IDS:
            found.append(device.name)
    return found


def libedgetpu_path() -> str | None:
    return ctypes.util.find_library("edgetpu")


def check_usb_accelerator(sysfs: Path | str = "/sys/bus/usb/devices") -> None:
    """Fail fast, naming what is missing, unless libedgetpu and a USB Accelerator are both present."""
    missing = []
    if libedgetpu_path() is None:
        missing.append(f"libedgetpu is not installed: {LIBEDGETPU_HINT}")
    if not usb_accelerators(sysfs):
        ids = " or ".join(f"{v}:{p}" for v, p in USB_ACCELERATOR_IDS)
        missing.append(f"no Coral USB Accelerator is attached (no USB device {ids}): plug it into a USB 3 port")
    if missing:
        raise MCUForgeError("cannot run on the coral-usb target: " + "; ".join(missing))


def run_usb(model: Path | str, input_npy: Path | str | None = None, sysfs: Path | str = "/sys/bus/usb/devices") -> RunResult:
    """Run a compiled model on an attached USB Accelerator (no CPU fallback: the target is the TPU)."""
    check_usb_accelerator(sysfs)
    ctypes.CDLL(libedgetpu_path())  # a broken install fails here with the loader's message
    return run_local(model, None, input_npy, require_edgetpu=True)


def _require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        hint = "pip install mendel-development-tool" if "mdt" in missing else "apt-get install openssh-client"
        raise MCUForgeError(f"{', '.join(missing)} not found on PATH: {hint}")


def _remote(command: list[str], what: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
    """Run one transfer step with a timeout; `check` False leaves the exit status to the caller (the runner's own errors)."""
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(f"{what} timed out after {timeout:g} s: check that the board is powered and on the network") from None
    if check and run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        raise MCUForgeError(
            f"{what} failed: {lines[-1] if lines else f'exit status {run.returncode}'}. "
            "Check that `ssh HOST` logs in without a password (mdt pushkey, or ssh-copy-id)"
        )
    return run


def run_devboard(model: Path | str, host: str | None, cpu_model: Path | str | None = None, input_npy: Path | str | None = None,
                 via: str = "ssh", port: int = 22, connect_timeout: int = 10, remote_dir: str = REMOTE_DIR) -> RunResult:  # fmt: skip
    """Copy the model(s), the input and the runner to a Coral Dev Board and run them there.

    `via` "ssh" needs `host` (user@address); "mdt" uses the device mdt is set to
    (`mdt set preferred-device NAME`). Every step has a timeout, so an absent board fails fast.
    """
    files = [Path(p) for p in (model, cpu_model, input_npy) if p is not None]
    for p in files:
        if not p.is_file():
            raise MCUForgeError(f"file not found: {p}")
    remote = {p: f"{remote_dir}/{p.name}" for p in [*files, RUNNER]}
    run_args = _runner_args(*(Path(remote[Path(p)]) if p is not None else None for p in (model, cpu_model, input_npy)), False)
    runner_command = ["python3", remote[RUNNER], *run_args]
    step_timeout = connect_timeout + 60
    if via == "ssh":
        if not host:
            raise MCUForgeError("--host is required for the coral-devboard target over ssh: pass --host mendel@ADDRESS")
        _require_tools("ssh", "scp")
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}"]
        _remote(["ssh", *options, "-p", str(port), host, "mkdir", "-p", remote_dir], f"ssh to {host}", step_timeout)
        _remote(["scp", *options, "-P", str(port), *map(str, remote), f"{host}:{remote_dir}/"], f"copying to {host}", step_timeout)
        run = _remote(["ssh", *options, "-p", str(port), host, *runner_command], f"running on {host}", RUN_TIMEOUT_S + connect_timeout, check=False)
    elif via == "mdt":
        if host:
            raise MCUForgeError("mdt runs on its preferred device: set it with `mdt set preferred-device NAME` and omit --host")
        _require_tools("mdt")
        _remote(["mdt", "exec", "mkdir", "-p", remote_dir], "mdt exec", step_timeout)
        for local, target in remote.items():
            _remote(["mdt", "push", str(local), target], f"mdt push {local.name}", step_timeout)
        run = _remote(["mdt", "exec", *runner_command], "running over mdt", RUN_TIMEOUT_S + connect_timeout, check=False)
    else:
        raise MCUForgeError(f"unknown transfer {via!r}: expected ssh or mdt")
    return _result(run, host or "the mdt device")

