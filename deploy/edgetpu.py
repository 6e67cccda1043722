"""Coral Edge TPU: the static compatibility check (which ops map, why not, where the CPU takes over).

The check follows Coral's published model requirements
(coral.ai/docs/edgetpu/models-intro): tensors fully 8-bit quantized, sizes fixed
at compile time, constant parameters, at most three dimensions larger than one
(only the innermost three may exceed 1), and the supported-op table with its
per-op limitations and minimum runtime versions. The compiler makes a single
Edge TPU segment: from the first op it can map up to the first op it cannot;
that op and everything after it run on the CPU even when they could map
("More than one subgraph is not supported"). So the report names the op that
ends the segment and what to change, before anyone compiles.

Compiling is deploy/edgetpu_compiler.py; running, deploy/edgetpu_host.py and
deploy/edgetpu_devboard.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mcuforge.deploy.tflite_model import Operator, Subgraph, TFLiteModel, read_tflite

DEFAULT_MIN_RUNTIME = 14  # what edgetpu_compiler 16 targets by default
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
