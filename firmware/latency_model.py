"""Instructions per inference from a per-op cost model fitted on QEMU counts, one per core.

Each op of the int8 graph costs a linear sum of FEATURES (a constant; MACs;
output and input elements; output pixels; window taps inside the input, summed
over output pixels; CONV_2D's im2col patch elements; the MACs the DSP CONV_2D
adds by computing pixels and channels in pairs, an odd one twice; inside taps x
output channels, the portable kernels' per-tap loop; the MACs of inside taps),
with coefficients per op kind: the op code, and for DEPTHWISE_CONV_2D the loop
the DSP kernels choose (3x3, one input channel, general).

bench/search_cost_model.py counts each op of random DS-CNN/MobileNet-style
candidates under QEMU (qemu-icount plugin), fits the coefficients by least
squares and writes them per core (the -mcpu the firmware is compiled for) to
latency_model.json beside this module, with the digest of the engine sources
they were measured on and the error on held-out candidates: a clean clone
predicts offline and deterministically, and an engine change asks for a refit
instead of predicting from stale counts.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.firmware.prepared import NARROW_DEPTHWISE_CHANNEL_MAJOR

COEFFICIENTS_FILE = Path(__file__).resolve().with_name("latency_model.json")
FEATURES = ("op", "macs", "output_elements", "input_elements", "output_pixels", "window_taps", "patch_elements", "pairing_macs",
            "channel_taps", "inside_macs")
REFIT = "refit with `make search-cost-model` (python bench/search_cost_model.py, a few minutes per core)"


@dataclass(frozen=True)
class OpFeatures:
    """One op of a graph as the cost model sees it."""

    kind: str  # op code, with the depthwise kernel's loop
    macs: int
    values: tuple[int, ...]  # FEATURES, in order


def _depthwise_kind(filter_shape: tuple[int, ...], input_shape: tuple[int, ...], output_shape: tuple[int, ...], options,
                    choices: int) -> str:
    """The loop kernels/dsp/depthwise_conv.c prepares for this depthwise conv: for 3 x 3 ones, the NHWC frame loops
    where the output is narrower than 6 (MFD_DW_MIN_WIDTH), the multiplier 1, channels in fours, the input at least 3 x 3
    (mfd_dw3x3_nhwc_fits), unless the build's `choices` (firmware/code_budget.py) send narrow layers channel-major,
    else the channel-major ones. Not seen here: requantization shifts outside the NHWC loops' range."""
    if input_shape[-1] == 1:
        return "DEPTHWISE_CONV_2D:one_input_channel"
    dilated = getattr(options, "dilationHFactor", 1) != 1 or getattr(options, "dilationWFactor", 1) != 1
    if filter_shape[1:3] != (3, 3) or dilated:
        return "DEPTHWISE_CONV_2D:general"
    narrow = not choices & NARROW_DEPTHWISE_CHANNEL_MAJOR and output_shape[2] < 6 and output_shape[3] == input_shape[3] and output_shape[3] % 4 == 0 and min(input_shape[1:3]) >= 3
    return "DEPTHWISE_CONV_2D:3x3_nhwc" if narrow else "DEPTHWISE_CONV_2D:3x3"


def _inside_taps(in_size, out_size, kernel, options) -> int:
    """Window taps inside the input, summed over the output (TFLite SAME padding puts the odd pad after)."""
    same = options.padding == 0  # tflite Padding.SAME
    counts = []
    for axis, name in enumerate(("H", "W")):
        stride, dilation = getattr(options, f"stride{name}"), getattr(options, f"dilation{name}Factor", 1)
        extent = (kernel[axis] - 1) * dilation + 1
        pad = max((out_size[axis] - 1) * stride + extent - in_size[axis], 0) // 2 if same else 0
        counts.append(sum(0 <= o * stride - pad + f * dilation < in_size[axis] for o in range(out_size[axis]) for f in range(kernel[axis])))
    return counts[0] * counts[1]


def op_features(model: bytes, source: str = "model", choices: int = 0) -> list[OpFeatures]:
    """The cost model's view of every op of the main graph, in execution order, as a firmware prepared with the
    build choices `choices` (mf_kernel.h's MF_CHOICE_* bits, code_budget.BudgetedImage.choices) runs it."""
    from mcuforge.deploy.tflite_model import parse_tflite

    graph = parse_tflite(model, source).main
    result = []
    for op in graph.operators:
        inputs = [graph.tensors[i] for i in op.inputs if i >= 0]
        output = graph.tensors[op.outputs[0]]
        out_elements = output.elements
        in_elements = inputs[0].elements if inputs else 0
        kind, macs, pixels, taps, patch, pairing, inside_macs = op.opcode, 0, 0, 0, 0, 0, 0
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            filter_shape = inputs[1].shape  # CONV_2D: (out channels, kh, kw, in channels per group); depthwise: (1, kh, kw, channels)
            out_h, out_w, out_c = output.shape[1:]
            pixels = out_h * out_w
            taps = _inside_taps(inputs[0].shape[1:3], (out_h, out_w), filter_shape[1:3], op.options)
        if op.opcode == "CONV_2D":
            per_pixel = int(np.prod(filter_shape[1:]))
            patch = pixels * per_pixel
            macs = patch * out_c
            pairing = out_h * (out_w + out_w % 2) * (out_c + out_c % 2) * per_pixel - macs
            inside_macs = taps * filter_shape[3] * out_c
        elif op.opcode == "DEPTHWISE_CONV_2D":
            macs = pixels * filter_shape[1] * filter_shape[2] * out_c
            inside_macs = taps * out_c
            kind = _depthwise_kind(filter_shape, inputs[0].shape, output.shape, op.options, choices)
        elif op.opcode == "FULLY_CONNECTED":
            macs = out_elements * inputs[1].shape[-1]
        channel_taps = taps * output.shape[-1] if taps else 0
        result.append(OpFeatures(kind, macs, (1, macs, out_elements, in_elements, pixels, taps, patch, pairing, channel_taps, inside_macs)))
    return result


def op_macs(model: bytes, source: str = "model") -> list[tuple[str, int]]:
    """Each op's code and multiply-accumulates (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED; 0 for the others)."""
    return [(op.kind.split(":")[0], op.macs) for op in op_features(model, source)]


# Engine sources a prepared image never links: they read the .tflite and write the image on the host,
# so editing them cannot change an instruction count (tests/test_firmware.py checks the ELF).
HOST_ONLY_SOURCES = frozenset({"mf_flatbuffer.c", "mf_flexbuffer.c", "mf_prepare.c"})


def engine_digest(kernels: str) -> str:
    """A digest of the engine sources a prepared firmware with kernel set `kernels` links (the counts depend on them)."""
    from mcuforge.firmware.engine import RUNTIME_DIR, runtime_sources

    linked = (path for path in runtime_sources(kernels) if path.name not in HOST_ONLY_SOURCES)
    digest = hashlib.sha256()
    for path in sorted({*linked, *RUNTIME_DIR.rglob("*.h")}):
        digest.update(str(path.relative_to(RUNTIME_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LatencyModel:
    """Fitted per-op coefficients for one core, measured on one QEMU board with one kernel set."""

    cpu: str
    board: str
    kernels: str
    engine_digest: str
    coefficients: dict[str, tuple[float, ...]]  # op kind -> one per FEATURES

    def op_instructions(self, ops: list[OpFeatures], source: str = "model") -> list[float]:
        """Each op's predicted instructions; MCUForgeError names an op kind the model was not fitted on."""
        missing = sorted({op.kind for op in ops} - set(self.coefficients))
        if missing:
            raise MCUForgeError(
                f"{source}: op {missing[0]} has no fitted cost on {self.cpu} ({self.kernels} kernels; fitted: "
                f"{', '.join(sorted(self.coefficients))}): use those ops, or add the op to bench/search_cost_model.py's candidates and {REFIT}"
            )
        return [float(np.dot(self.coefficients[op.kind], op.values)) for op in ops]

    def instructions(self, model: bytes, source: str = "model", choices: int = 0) -> int:
        """Predicted instructions per inference of the int8 .tflite `model` prepared with build choices `choices`."""
        return int(round(sum(self.op_instructions(op_features(model, source, choices), source))))


def fit(cpu: str, board: str, kernels: str, samples: list[tuple[list[OpFeatures], list[int]]]) -> LatencyModel:
    """Least-squares coefficients per op kind from measured per-op instructions.

    samples: per candidate, its ops and their measured instructions. Rows are
    weighted by 1/sqrt(measured): between plain least squares, where the largest
    ops decide every coefficient, and relative error, where tiny ops count as
    much as the ones that make up the total (the lower error on held-out totals).
    """
    rows: dict[str, tuple[list, list]] = {}
    for ops, measured in samples:
        for op, count in zip(ops, measured, strict=True):
            features, counts = rows.setdefault(op.kind, ([], []))
            features.append(op.values)
            counts.append(count)
    coefficients = {}
    for kind, (features, counts) in sorted(rows.items()):
        x, y = np.asarray(features, dtype=np.float64), np.asarray(counts, dtype=np.float64)
        weight = 1.0 / np.sqrt(np.maximum(y, 1.0))
        solution, *_ = np.linalg.lstsq(x * weight[:, None], y * weight, rcond=None)
        coefficients[kind] = tuple(round(float(c), 6) for c in solution)
    return LatencyModel(cpu, board, kernels, engine_digest(kernels), coefficients)


@lru_cache(maxsize=None)
def _stored() -> dict:
    """The stored cores' entries; none when the file is missing or was fitted on other FEATURES."""
    if not COEFFICIENTS_FILE.is_file():
        return {}
    stored = json.loads(COEFFICIENTS_FILE.read_text())
    return stored["cores"] if tuple(stored["features"]) == FEATURES else {}


def latency_model(cpu: str, kernels: str) -> LatencyModel:
    """The stored model of `cpu` with `kernels`; MCUForgeError when there is none or the engine changed since."""
    entry = _stored().get(cpu)
    if entry is None or entry["kernels"] != kernels:
        raise MCUForgeError(f"no latency model for {cpu} with {kernels} kernels in {COEFFICIENTS_FILE.name}: {REFIT}")
    current = engine_digest(kernels)
    if entry["engine_digest"] != current:
        raise MCUForgeError(
            f"the latency model of {cpu} was fitted on engine sources {entry['engine_digest']}, these are {current}: {REFIT}"
        )
    coefficients = {kind: tuple(values) for kind, values in entry["coefficients"].items()}
    return LatencyModel(cpu, entry["board"], kernels, current, coefficients)


def store(model: LatencyModel, report: dict) -> None:
    """Write `model` (with `report`: its measured error) into latency_model.json, keeping the other cores' entries."""
    from mcuforge.artifacts import write_text_atomic

    cores = dict(_stored())
    cores[model.cpu] = {"board": model.board, "kernels": model.kernels, "engine_digest": model.engine_digest,
                        "coefficients": {kind: list(values) for kind, values in model.coefficients.items()}, **report}
    text = json.dumps({"features": list(FEATURES), "cores": dict(sorted(cores.items()))}, indent=1) + "\n"
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text)  # a list on one line
    write_text_atomic(COEFFICIENTS_FILE, text)
    _stored.cache_clear()
