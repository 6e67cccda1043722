"""A DEPTHWISE_CONV_2D feeding a FULLY_CONNECTED alone runs as one fused op (kernels/mf_depthwise_fc.h) against TFLM.

TensorFlow's converter puts a RESHAPE between the two; micro_speech's graph
has none (its FULLY_CONNECTED flattens the 4-D depthwise output itself), so
the cases drop it the same way. Both paths (interpreter and prepared image)
and both kernel sets run each case on random inputs; outputs must equal
TFLM's. Pairs whose middle tensor is also a graph output, or read twice,
must run apart, with the same outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from oplib import convert, edited, random_inputs, run_tflm

from mcuforge.deploy.tflite_model import parse_tflite

RESHAPE = 22


def without_reshapes(model: bytes) -> bytes:
    """The model with each RESHAPE removed, its readers reading its input (a FULLY_CONNECTED flattens it alike)."""

    def edit(tree):
        graph = tree.subgraphs[0]
        codes = tree.operatorCodes
        reshapes = [op for op in graph.operators if max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode) == RESHAPE]
        for reshape in reshapes:
            source, target = int(reshape.inputs[0]), int(reshape.outputs[0])
            for op in graph.operators:
                op.inputs = [source if int(t) == target else int(t) for t in op.inputs]
            graph.outputs = [source if int(t) == target else int(t) for t in graph.outputs]
        graph.operators = [op for op in graph.operators if op not in reshapes]

    return edited(model, edit)


def depthwise_fc_model(rng: np.random.Generator, shape, kernel, multiplier: int, stride: int, padding: str, units: int,
                       heads: int = 1, middle_out: bool = False, fc_weights: str = "normal") -> bytes:
    """DEPTHWISE_CONV_2D (relu) then `heads` FULLY_CONNECTED over its flattened output; `middle_out` also
    returns the depthwise output. Normal fully connected weights are mostly small once quantized, uniform
    ones spread over the whole int8 range."""
    import tensorflow as tf

    cin = shape[3]
    filters = tf.constant(rng.normal(0, 0.5, size=(*kernel, cin, multiplier)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=cin * multiplier).astype(np.float32))
    out_h = (shape[1] + stride - 1) // stride if padding == "SAME" else (shape[1] - kernel[0]) // stride + 1
    out_w = (shape[2] + stride - 1) // stride if padding == "SAME" else (shape[2] - kernel[1]) // stride + 1
    depth = out_h * out_w * cin * multiplier
    draw = {"normal": lambda size: rng.normal(0, 0.1, size=size), "uniform": lambda size: rng.uniform(-1, 1, size=size)}
    weights = [tf.constant(draw[fc_weights]((depth, units)).astype(np.float32)) for _ in range(heads)]
    fc_bias = tf.constant(rng.normal(0, 0.3, size=units).astype(np.float32))

    def fn(x):
        middle = tf.nn.relu(tf.nn.depthwise_conv2d(x, filters, [1, stride, stride, 1], padding) + bias)
        flat = tf.reshape(middle, (1, depth))
        outputs = [tf.matmul(flat, w) + fc_bias for w in weights]
        return (middle, *outputs) if middle_out else tuple(outputs) if heads > 1 else outputs[0]

    return without_reshapes(convert(fn, [shape], rng, value_range=(-float(rng.uniform(0.5, 4)), float(rng.uniform(0.5, 4)))))


def fused_op_runs(model: bytes, kernels: str) -> bool:
    """Whether the model's prepared image runs the fused kernel (its runner table names it)."""
    from mcuforge.firmware.prepared import eval_list, prepared_image

    return "depthwise_fc_eval" in eval_list(prepared_image(model, kernels))


def filter_coding_saving(model: bytes) -> int:
    """The bytes a prepared image saves by coding the fully connected filter after a DEPTHWISE_CONV_2D (7-bit
    codes with exceptions, mf_depthwise_fc.h), counted from the model's weights: 0 where that does not pay."""
    graph = parse_tflite(model).main
    pairs = [(a, b) for a, b in zip(graph.operators, graph.operators[1:])
             if (a.opcode, b.opcode) == ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and b.inputs[0] == a.outputs[0]]
    if not pairs:
        return 0
    filter_tensor = graph.tensor(pairs[0][1].inputs[1])
    weights = np.frombuffer(filter_tensor.data, dtype=np.int8).astype(np.int32).reshape(filter_tensor.shape)
    units, depth = weights.shape
    exceptions = int(np.count_nonzero((weights < -63) | (weights > 63)))
    coded = units * (4 + (depth + 7) // 8 * 7) + 1 + exceptions
    return max(weights.size - coded, 0)


def filter_in_image(model: bytes, kernels: str) -> bool:
    """Whether the prepared image keeps the fully connected filter tensor (its descriptor's place is not NONE)."""
    from test_sparse_weights import tensor_stored

    from mcuforge.firmware.prepared import prepared_image

    fc = next(op for op in parse_tflite(model).main.operators if op.opcode == "FULLY_CONNECTED")
    return tensor_stored(prepared_image(model, kernels).data, fc.inputs[1])


def assert_both_paths_match_tflm(model: bytes, rng: np.random.Generator) -> None:
    from mcuforge.firmware.engine import Engine
    from mcuforge.firmware.prepared import PreparedEngine, prepared_image

    inputs = random_inputs(model, rng)
    expected = run_tflm(model, inputs)
    for kernels in ("portable", "dsp"):
        with Engine(model, kernels=kernels) as engine:
            interpreted = engine.invoke(inputs)
        with PreparedEngine.from_image(prepared_image(model, kernels), kernels) as engine:
            prepared = engine.invoke(inputs)
        for actual in (interpreted, prepared):
            assert len(actual) == len(expected)
            for got, want in zip(actual, expected):
                np.testing.assert_array_equal(got.astype(np.int32), want.astype(np.int32))


# (input shape, kernel, multiplier, stride, padding): each DSP depthwise loop (3x3 channel-major and NHWC, one
# input channel, four channels a word), outputs of two to six bands of rows (512 bytes a band at most, but the
# first band of the last case takes three rows, as its padding reaches three rows down; the third case's bands
# start off a group of eight coded weights). The last case's uniform weights are not worth coding.
CASES = [
    ((1, 20, 16, 4), (3, 3), 1, 1, "SAME", "normal"),
    ((1, 40, 10, 8), (3, 3), 1, 2, "SAME", "normal"),
    ((1, 49, 20, 1), (5, 4), 3, 2, "SAME", "normal"),
    ((1, 12, 32, 8), (7, 3), 1, 1, "SAME", "uniform"),
]


@pytest.mark.parametrize("seed", range(len(CASES)))
def test_depthwise_then_fully_connected_runs_fused_and_matches_tflm(seed):
    rng = np.random.default_rng(300 + seed)
    shape, kernel, multiplier, stride, padding, fc_weights = CASES[seed]
    model = depthwise_fc_model(rng, shape, kernel, multiplier, stride, padding, units=int(rng.integers(1, 7)),
                               fc_weights=fc_weights)
    assert [op.opcode for op in parse_tflite(model).main.operators] == ["DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    assert fused_op_runs(model, "portable") and fused_op_runs(model, "dsp")
    assert (filter_coding_saving(model) > 0) == (fc_weights == "normal")
    assert filter_in_image(model, "portable") == filter_in_image(model, "dsp") == (fc_weights == "uniform")
    assert_both_paths_match_tflm(model, rng)


@pytest.mark.parametrize("why", ["middle is a graph output", "middle read twice"])
def test_pairs_whose_middle_tensor_is_needed_elsewhere_run_apart(why):
    rng = np.random.default_rng(400)
    options = {"middle_out": True} if why == "middle is a graph output" else {"heads": 2}
    model = depthwise_fc_model(rng, (1, 9, 7, 2), (3, 3), 1, 1, "SAME", units=3, **options)
    assert not fused_op_runs(model, "portable") and not fused_op_runs(model, "dsp")
    assert_both_paths_match_tflm(model, rng)
