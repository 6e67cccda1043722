"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with INT4 weights against TFLM.

Each case is a converted one-op int8 model whose filter is then rewritten as a
packed INT4 tensor of random values in [-8, 7] (two a byte, what TF's
converter writes after 4-bit QAT), so shapes and geometry stay as random as
the int8 cases'. TFLM unpacks the filter itself: the oracle for the nibble
order. The engine must give TFLM's outputs (interpreter, prepared image, DSP
kernel set) in the int8 model's arena.
"""

from __future__ import annotations

import numpy as np
import pytest
from oplib import assert_matches_tflm, convert_one_op, edited, random_inputs, run_tflm
from test_ops_core import activation, conv_case, value_range

from mcuforge.firmware.engine import Engine

INT4 = 17  # TFLite schema TensorType.INT4


def pack_int4(values: np.ndarray) -> bytes:
    """Values in [-8, 7], flat order, two a byte (value 2k in byte k's low nibble)."""
    nibbles = np.zeros(values.size + values.size % 2, np.uint8)
    nibbles[: values.size] = values.astype(np.int64).ravel() & 0xF
    return (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes()


def with_int4_filter(model: bytes, rng: np.random.Generator) -> bytes:
    """`model` with its op's filter (input 1) replaced by random INT4 values, packed."""

    def edit(tree):
        graph = tree.subgraphs[0]
        tensor = graph.tensors[graph.operators[0].inputs[1]]
        values = rng.integers(-8, 8, size=int(np.prod(tensor.shape)))
        tree.buffers[tensor.buffer].data = np.frombuffer(pack_int4(values), np.uint8)
        tensor.type = INT4

    return edited(model, edit)


def assert_int4_matches_tflm(model: bytes, rng: np.random.Generator) -> None:
    """The INT4 variant of `model`: TFLM's outputs from the engine's portable and DSP kernels, in the int8 arena."""
    int4 = with_int4_filter(model, rng)
    assert_matches_tflm(int4, rng, trials=2)
    inputs = random_inputs(int4, rng)
    with Engine(int4, kernels="dsp") as engine:
        for got, want in zip(engine.invoke(inputs), run_tflm(int4, inputs)):
            np.testing.assert_array_equal(got.astype(np.int32), want.astype(np.int32))
    with Engine(model) as int8, Engine(int4) as packed:
        assert packed.arena_used == int8.arena_used


@pytest.mark.parametrize("seed", range(3))
def test_conv_2d_int4(seed):
    import tensorflow as tf

    rng, shape, fshape, stride, dilation, padding, act = conv_case(21 + seed)
    filters = tf.constant(rng.normal(0, 0.5, size=fshape).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=fshape[3]).astype(np.float32))
    fn = lambda x: activation(act)(tf.nn.conv2d(x, filters, stride, padding, dilations=dilation) + bias)  # noqa: E731
    assert_int4_matches_tflm(convert_one_op(fn, [shape], rng, "CONV_2D", value_range=value_range(rng)), rng)


@pytest.mark.parametrize("seed", range(4))
def test_conv_2d_int4_dsp_weight_words(seed):
    """Filter depths for the DSP INT4 loop (dsp/conv_int4.c: eight weights a word): whole words only (1x1
    over 16 channels), words and a tail (3x3 over 4: 36 values), an odd depth (every other row starts
    mid-byte) and one input channel (3x3 over 1: 9 values, a first layer's), with odd output widths and
    channel counts."""
    import tensorflow as tf

    rng = np.random.default_rng(400 + seed)
    k, cin = ((1, 16), (3, 4), (1, 13), (3, 1))[seed]
    cout, h, w = int(rng.integers(2, 10)), int(rng.integers(k + 1, 7)), int(rng.integers(k + 1, 8))
    filters = tf.constant(rng.normal(0, 0.5, size=(k, k, cin, cout)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=cout).astype(np.float32))
    fn = lambda x: activation("relu")(tf.nn.conv2d(x, filters, 1, "SAME") + bias)  # noqa: E731
    assert_int4_matches_tflm(convert_one_op(fn, [(1, h, w, cin)], rng, "CONV_2D", value_range=value_range(rng)), rng)


@pytest.mark.parametrize("seed", range(3))
def test_depthwise_conv_2d_int4(seed):
    import tensorflow as tf

    rng, shape, (kh, kw, cin, _), stride, dilation, padding, act = conv_case(30 + seed)
    multiplier = int(rng.integers(1, 3))
    filters = tf.constant(rng.normal(0, 0.5, size=(kh, kw, cin, multiplier)).astype(np.float32))
    fn = lambda x: activation(act)(  # noqa: E731
        tf.nn.depthwise_conv2d(x, filters, [1, stride, stride, 1], padding, dilations=[dilation, dilation])
    )
    assert_int4_matches_tflm(convert_one_op(fn, [shape], rng, "DEPTHWISE_CONV_2D", value_range=value_range(rng)), rng)


@pytest.mark.parametrize("seed", range(3))
def test_depthwise_conv_2d_int4_dsp_channel_fours(seed):
    """Depthwise shapes for the DSP INT4 loop (dsp/depthwise_conv_int4.c: four channels a halfword of
    weights): 3x3 over 8 channels, SAME (taps in the padding skipped); 3x3 over 12, stride 2, VALID; and 6
    channels (not in fours: the portable loop)."""
    import tensorflow as tf

    rng = np.random.default_rng(500 + seed)
    cin, stride, padding = ((8, 1, "SAME"), (12, 2, "VALID"), (6, 1, "SAME"))[seed]
    h, w = int(rng.integers(3, 8)), int(rng.integers(3, 9))
    filters = tf.constant(rng.normal(0, 0.5, size=(3, 3, cin, 1)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=cin).astype(np.float32))
    fn = lambda x: activation("relu6")(  # noqa: E731
        tf.nn.depthwise_conv2d(x, filters, [1, stride, stride, 1], padding) + bias
    )
    model = convert_one_op(fn, [(1, h, w, cin)], rng, "DEPTHWISE_CONV_2D", value_range=value_range(rng))
    assert_int4_matches_tflm(model, rng)


@pytest.mark.parametrize("seed", range(3))
def test_fully_connected_int4(seed):
    import tensorflow as tf

    rng = np.random.default_rng(300 + seed)
    batch, depth, units = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 12))
    weights = tf.constant(rng.normal(0, 0.3, size=(depth, units)).astype(np.float32))
    fn = lambda x: activation(("none", "relu", "relu6")[seed])(tf.matmul(x, weights))  # noqa: E731
    model = convert_one_op(fn, [(batch, depth)], rng, "FULLY_CONNECTED", value_range=value_range(rng))
    assert_int4_matches_tflm(model, rng)

