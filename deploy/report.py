"""Model report: per-layer cost of a .tflite and its totals against a target's budgets.

MACs count multiply-accumulates of the ops that do them (convolutions, fully
connected, LSTM, batch matmul, elementwise MUL); pooling, activations and
reshapes count 0. Parameters and weight bytes are the constant inputs an op
reads from flash, except integer operands that configure an op (a RESHAPE's
shape, a MEAN's axes, a PAD's paddings); activation bytes are its non-constant
inputs and outputs. Flash is the model's
size; the arena is measured with the TFLM host interpreter (see export.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mcuforge.artifacts import write_json_atomic, write_text_atomic
from mcuforge.deploy.export import arena_size
from mcuforge.deploy.targets import Fit, load_target
from mcuforge.deploy.tflite_model import Operator, Subgraph, TFLiteModel, read_tflite
from mcuforge.deploy.lce import reference_emulator
from mcuforge.errors import MCUForgeError


@dataclass(frozen=True)
class LayerRow:
    index: int
    op: str
    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    parameters: int
    macs: int
    weight_bytes: int
    activation_bytes: int


@dataclass(frozen=True)
class ModelReport:
    model: str
    layers: list[LayerRow]
    flash_bytes: int
    arena_measured_bytes: int | None  # None for models with LCE ops, which TFLM cannot run
    arena_bytes: int | None
    macs: int
    parameters: int
    weight_bytes: int
    target: str | None
    fit_problems: list[str]

    def to_json(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        header = "| # | op | inputs | outputs | params | MACs | weight B | activation B |\n|---:|---|---|---|---:|---:|---:|---:|"
        rows = [
            f"| {r.index} | {r.op} | {_shapes(r.input_shapes)} | {_shapes(r.output_shapes)} | {r.parameters:,} | "
            f"{r.macs:,} | {r.weight_bytes:,} | {r.activation_bytes:,} |"
            for r in self.layers
        ]
        totals = [
            f"- flash (model bytes): {self.flash_bytes:,}",
            f"- peak arena (TFLM measured): {self.arena_measured_bytes:,}; with margin: {self.arena_bytes:,}"
            if self.arena_measured_bytes is not None
            else "- peak arena: none in TFLM (LCE ops); our engine's: `mcuforge engine stats`",
            f"- MACs per inference: {self.macs:,}",
            f"- parameters: {self.parameters:,} ({self.weight_bytes:,} weight bytes)",
        ]
        if self.target:
            verdict = "fits" if not self.fit_problems else "DOES NOT FIT: " + "; ".join(self.fit_problems)
            totals.append(f"- target {self.target}: {verdict}")
        return f"# Model report: {Path(self.model).name}\n\n" + "\n".join([header, *rows]) + "\n\n" + "\n".join(totals) + "\n"


def _shapes(shapes: list[list[int]]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes) or "-"


# Ops whose int32 constants are biases (parameters) rather than shapes, axes or paddings.
_WEIGHTED_OPS = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM", "SVDF", "BATCH_MATMUL"}
)


def _is_parameter(op: Operator, tensor) -> bool:
    return tensor.is_constant and (op.opcode in _WEIGHTED_OPS or tensor.dtype not in ("int32", "int64"))


def parameter_tensors(graph: Subgraph) -> list:
    """The distinct constant tensors the report counts as parameters (weights and biases, not shapes or axes)."""
    found = {}
    for op in graph.operators:
        for tensor in map(graph.tensor, op.inputs):
            if tensor is not None and _is_parameter(op, tensor):
                found[tensor.index] = tensor
    return [found[i] for i in sorted(found)]


def operator_macs(graph: Subgraph, op: Operator) -> int:
    """Multiply-accumulates of one op from its tensor shapes (0 for ops without them)."""
    inputs = [graph.tensor(i) for i in op.inputs]
    out = graph.tensors[op.outputs[0]] if op.outputs else None
    if out is None:
        return 0
    if op.opcode == "FULLY_CONNECTED":  # weights [units, in]
        return out.elements * inputs[1].shape[-1]
    if op.opcode == "CONV_2D":  # filter [out_c, kh, kw, in_c]
        _, kh, kw, in_c = inputs[1].shape
        return out.elements * kh * kw * in_c
    if op.opcode == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, out_c]: one input channel per output channel
        _, kh, kw, _ = inputs[1].shape
        return out.elements * kh * kw
    if op.opcode == "TRANSPOSE_CONV":  # inputs: output_shape, filter [out_c, kh, kw, in_c], input
        out_c, kh, kw, _ = inputs[1].shape
        return inputs[2].elements * kh * kw * out_c
    if op.opcode == "BATCH_MATMUL":
        return out.elements * inputs[0].shape[-1]
    if op.opcode == "MUL":
        return out.elements
    if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # 4 gates, each input and recurrent weights
        units = inputs[5].shape[0] if inputs[5] is not None else out.shape[-1]  # recurrent_to_forget [units, units]
        features = inputs[0].shape[-1]
        steps = inputs[0].elements // features
        return steps * 4 * units * (features + units)
    return 0


def layer_rows(model: TFLiteModel) -> list[LayerRow]:
    graph = model.main
    rows = []
    for op in graph.operators:
        inputs = [t for t in map(graph.tensor, op.inputs) if t is not None]
        outputs = [graph.tensors[i] for i in op.outputs]
        constants = [t for t in inputs if _is_parameter(op, t)]
        activations = [t for t in inputs if not t.is_constant] + outputs
        rows.append(
            LayerRow(
                index=op.index,
                op=op.opcode,
                input_shapes=[list(t.shape) for t in inputs if not t.is_constant],
                output_shapes=[list(t.shape) for t in outputs],
                parameters=sum(t.elements for t in constants),
                macs=operator_macs(graph, op),
                weight_bytes=sum(t.nbytes for t in constants),
                activation_bytes=sum(t.nbytes for t in activations),
            )
        )
    return rows


def build_report(model_path: Path | str, target: str | None = None) -> ModelReport:
    """Analyse `model_path` (and measure its arena in TFLM); with a target, record what does not fit."""
    target_spec = load_target(target) if target is not None else None  # an unknown target fails before any work
    model_path = Path(model_path)
    model = read_tflite(model_path)
    if target_spec is not None and target_spec.accelerator is not None:
        model.require_integer(f"target {target_spec.name}'s {target_spec.accelerator}")
    usage = reference_emulator(model, model_path.read_bytes()).arena_usage()
    rows = layer_rows(model)
    needed = arena_size(usage) if usage is not None else None
    problems = Fit(target_spec, model.size, needed or 0).problems() if target_spec else []
    return ModelReport(
        model=str(model_path),
        layers=rows,
        flash_bytes=model.size,
        arena_measured_bytes=usage.total if usage is not None else None,
        arena_bytes=needed,
        macs=sum(r.macs for r in rows),
        parameters=sum(r.parameters for r in rows),
        weight_bytes=sum(r.weight_bytes for r in rows),
        target=target,
        fit_problems=problems,
    )


def write_report(report: ModelReport, out_dir: Path | str, sections: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Write `<model stem>_report.md` and `.json` into `out_dir`; returns both paths.

    `sections` are markdown appended after the engine's figures (the Edge TPU and Ethos-U estimates).
    """
    out_dir = Path(out_dir)
    stem = Path(report.model).stem
    try:
        md = write_text_atomic(out_dir / f"{stem}_report.md", "\n".join([report.markdown(), *sections]))
        js = write_json_atomic(out_dir / f"{stem}_report.json", report.to_json())
    except OSError as exc:
        raise MCUForgeError(f"cannot write the report into {out_dir}: {exc.strerror}. Pass --out DIR") from None
    return md, js


def read_report(path: Path | str) -> ModelReport:
    data = json.loads(Path(path).read_text())
    data["layers"] = [LayerRow(**row) for row in data["layers"]]
    return ModelReport(**data)
