"""Coral Edge TPU: running `edgetpu_compiler` on a model with its batch fixed at 1, and reading its log.

`edgetpu_compiler` does not install from this project's registries (Coral's apt
repository only); `compile_model` runs it when it is on PATH and otherwise says
how to install it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from mcuforge.artifacts import write_bytes_atomic, write_json_atomic
from mcuforge.deploy.edgetpu import DEFAULT_MIN_RUNTIME, MAPPED, CompatibilityReport
from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.errors import MCUForgeError

COMPILER = "edgetpu_compiler"
COMPILER_TIMEOUT_S = 600
INSTALL_HINT = (
    "install it from Coral's apt repository on an x86-64 Debian/Ubuntu host "
    "(curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -; "
    'echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list; '
    "sudo apt-get update; sudo apt-get install edgetpu-compiler), or use Coral's web compiler in Colab; "
    "that repository is not reachable from this project's registries, so mcuforge cannot install it"
)

# --- the model as the compiler takes it: batch 1 -----------------------------------------------


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


# --- running the compiler, reading its log --------------------------------------------------------

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
