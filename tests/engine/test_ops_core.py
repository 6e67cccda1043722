"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, pools, SOFTMAX, reshape-likes, QUANTIZE, DEQUANTIZE against TFLM.

Each case is a one-op model made by TensorFlow's converter from seeded random
shapes, strides, paddings, dilations, weights and value ranges (which set the
scales and zero points), run by the TFLM host interpreter and by our engine on
random inputs; outputs must be equal, compared as int32.
"""

from __future__ import annotations

import numpy as np
import pytest
from oplib import assert_matches_tflm, convert, convert_one_op

from mcuforge.deploy.tflite_model import parse_tflite

ACTIVATIONS = ("none", "relu", "relu6")


def activation(name: str):
    import tensorflow as tf

    return {"none": lambda x: x, "relu": tf.nn.relu, "relu6": tf.nn.relu6}[name]


def value_range(rng: np.random.Generator) -> tuple[float, float]:
    """An asymmetric float range: a different input scale and zero point per case."""
    return float(-rng.uniform(0.1, 6.0)), float(rng.uniform(0.1, 6.0))


def conv_case(seed: int):
    """Random CONV_2D geometry: kernel, channels, stride or dilation (TF takes one of the two), padding."""
    rng = np.random.default_rng(seed)
    kh, kw = (int(k) for k in rng.integers(1, 4, size=2))
    cin, cout = int(rng.integers(1, 5)), int(rng.integers(1, 7))
    h, w = int(rng.integers(kh + 2, 10)), int(rng.integers(kw + 2, 10))
    stride, dilation = (int(rng.integers(1, 3)), 1) if seed % 2 else (1, int(rng.integers(1, 3)))
    padding = ["SAME", "VALID"][seed % 3 == 0]
    batch = 2 if seed % 4 == 3 else 1
    return rng, (batch, h, w, cin), (kh, kw, cin, cout), stride, dilation, padding, ACTIVATIONS[seed % 3]


@pytest.mark.parametrize("seed", range(6))
def test_conv_2d(seed):
    import tensorflow as tf

    rng, shape, fshape, stride, dilation, padding, act = conv_case(seed)
    filters = tf.constant(rng.normal(0, 0.5, size=fshape).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=fshape[3]).astype(np.float32))
    fn = lambda x: activation(act)(tf.nn.conv2d(x, filters, stride, padding, dilations=dilation) + bias)  # noqa: E731
    model = convert_one_op(fn, [shape], rng, "CONV_2D", value_range=value_range(rng))
    assert_matches_tflm(model, rng)


@pytest.mark.parametrize("seed", range(6))
def test_depthwise_conv_2d(seed):
    import tensorflow as tf

    rng, shape, (kh, kw, cin, _), stride, dilation, padding, act = conv_case(seed)
    multiplier = int(rng.integers(1, 3))
    filters = tf.constant(rng.normal(0, 0.5, size=(kh, kw, cin, multiplier)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=cin * multiplier).astype(np.float32))
    strides = [1, stride, stride, 1]
    fn = lambda x: activation(act)(  # noqa: E731
        tf.nn.depthwise_conv2d(x, filters, strides, padding, dilations=[dilation, dilation]) + bias
    )
    model = convert_one_op(fn, [shape], rng, "DEPTHWISE_CONV_2D", value_range=value_range(rng))
    assert_matches_tflm(model, rng)


@pytest.mark.parametrize("seed", range(4))
def test_fully_connected(seed):
    import tensorflow as tf

    rng = np.random.default_rng(100 + seed)
    batch, depth, units = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 12))
    weights = tf.constant(rng.normal(0, 0.3, size=(depth, units)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.3, size=units).astype(np.float32))
    act = ACTIVATIONS[seed % 3]
    fn = lambda x: activation(act)(tf.matmul(x, weights) + bias)  # noqa: E731
    model = convert_one_op(fn, [(batch, depth)], rng, "FULLY_CONNECTED", value_range=value_range(rng))
    assert_matches_tflm(model, rng)


def test_fully_connected_per_channel_weights():
    """Weights quantized per output unit, over very different magnitudes."""
    import tensorflow as tf

    rng = np.random.default_rng(150)
    magnitudes = np.array([0.01, 0.1, 1.0, 10.0, 3.0], dtype=np.float32)
    weights = tf.constant((rng.normal(size=(8, 5)) * magnitudes).astype(np.float32))
    model = convert_one_op(lambda x: tf.matmul(x, weights), [(2, 8)], rng, "FULLY_CONNECTED", per_channel_dense=True)
    graph = parse_tflite(model).main
    assert len(graph.tensors[graph.operators[0].inputs[1]].quantization.scales) == 5
    assert_matches_tflm(model, rng, trials=5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_pooling(op, seed):
    import tensorflow as tf

    rng = np.random.default_rng(200 + seed)
    kh, kw = (int(k) for k in rng.integers(1, 4, size=2))
    sh, sw = (int(s) for s in rng.integers(1, 3, size=2))
    shape = (1, int(rng.integers(kh + 1, 9)), int(rng.integers(kw + 1, 9)), int(rng.integers(1, 5)))
    padding = ["SAME", "VALID"][seed % 2]
    pool = tf.nn.avg_pool2d if op == "AVERAGE_POOL_2D" else tf.nn.max_pool2d
    model = convert_one_op(lambda x: pool(x, (kh, kw), (sh, sw), padding), [shape], rng, op, value_range=value_range(rng))
    assert_matches_tflm(model, rng)


@pytest.mark.parametrize("shape", [(1, 10), (3, 7), (1, 2, 3, 5), (8, 64)])
def test_softmax(shape):
    import tensorflow as tf

    rng = np.random.default_rng(sum(shape))
    low, high = value_range(rng)
    model = convert_one_op(tf.nn.softmax, [shape], rng, "SOFTMAX", value_range=(low * 3, high * 3))
    assert_matches_tflm(model, rng, trials=5)


RESHAPES = [
    ("RESHAPE", (1, 4, 6), lambda tf: (lambda x: tf.reshape(x, (1, 24)))),
    ("SQUEEZE", (1, 5, 1, 3), lambda tf: (lambda x: tf.squeeze(x, axis=2))),
    ("EXPAND_DIMS", (2, 7), lambda tf: (lambda x: tf.expand_dims(x, 1))),
]


@pytest.mark.parametrize("op,shape,make", RESHAPES, ids=[r[0] for r in RESHAPES])
def test_reshape_like(op, shape, make):
    import tensorflow as tf

    rng = np.random.default_rng(len(op))
    model = convert(make(tf), [shape], rng)
    assert [o.opcode for o in parse_tflite(model).main.operators] in ([op], ["RESHAPE"])
    assert_matches_tflm(model, rng)


def test_reshape_between_ops_shares_buffers():
    """conv -> reshape -> dense: the reshape aliases the conv output, results still match TFLM."""
    import tensorflow as tf

    rng = np.random.default_rng(7)
    filters = tf.constant(rng.normal(0, 0.5, size=(3, 3, 2, 4)).astype(np.float32))
    weights = tf.constant(rng.normal(0, 0.3, size=(6 * 6 * 4, 5)).astype(np.float32))
    fn = lambda x: tf.matmul(tf.reshape(tf.nn.relu(tf.nn.conv2d(x, filters, 1, "SAME")), (1, -1)), weights)  # noqa: E731
    model = convert(fn, [(1, 6, 6, 2)], rng)
    assert [o.opcode for o in parse_tflite(model).main.operators] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert_matches_tflm(model, rng)


@pytest.mark.parametrize("seed", range(3))
def test_quantize_and_dequantize(seed):
    """Float I/O: QUANTIZE float->int8 in front, DEQUANTIZE int8->float behind, float outputs bit for bit."""
    import tensorflow as tf

    rng = np.random.default_rng(300 + seed)
    weights = tf.constant(rng.normal(0, 0.5, size=(8, 3)).astype(np.float32))
    model = convert(lambda x: tf.matmul(x, weights), [(2, 8)], rng, value_range=value_range(rng), io_type="float32")
    ops = [o.opcode for o in parse_tflite(model).main.operators]
    assert ops == ["QUANTIZE", "FULLY_CONNECTED", "DEQUANTIZE"]
    assert_matches_tflm(model, rng)
