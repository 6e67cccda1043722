"""The float32 kernels against TFLM's float reference kernels, bit for bit, on random shapes and options.

Each case is a one-op model written from the schema (floatlib.py), run by the
TFLM host interpreter (the oracle), our engine and the engine's prepared
image on the same random inputs (oplib.assert_matches_tflm). Weights and
biases are random too; some cases scale them so sums overflow to infinity
and the fused activation's clamp to +-FLT_MAX shows.
"""

from __future__ import annotations

import numpy as np
import pytest
from floatlib import Tensor, one_op_model
from oplib import assert_matches_tflm, run_engine, run_tflm

ACTIVATIONS = (0, 1, 2, 3)  # NONE, RELU, RELU_N1_TO_1, RELU6
SEEDS = range(6)


def _out_size(size: int, kernel: int, stride: int, dilation: int, same: bool) -> int:
    effective = (kernel - 1) * dilation + 1
    return (size + stride - 1) // stride if same else (size - effective) // stride + 1


def _weights(rng, shape, huge: bool = False) -> np.ndarray:
    return (rng.standard_normal(shape) * (1e38 if huge else 1.0)).astype(np.float32)


def _window(rng, depthwise: bool):
    """Random input, filter, stride, dilation and padding of a conv or depthwise case with an output of at least 1x1."""
    while True:
        n, h, w, c = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 5))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        dh, dw = (1, 1) if rng.random() < 0.5 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        same = bool(rng.random() < 0.5)
        oh, ow = _out_size(h, kh, sh, dh, same), _out_size(w, kw, sw, dw, same)
        if oh >= 1 and ow >= 1:
            options = {"padding": 0 if same else 1, "strideH": sh, "strideW": sw, "dilationHFactor": dh,
                       "dilationWFactor": dw, "fusedActivationFunction": int(rng.choice(ACTIVATIONS))}
            return (n, h, w, c), (kh, kw), (oh, ow), options


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_2d(seed):
    rng = np.random.default_rng(seed)
    (n, h, w, c), (kh, kw), (oh, ow), options = _window(rng, False)
    out_c = int(rng.integers(1, 6))
    bias = Tensor((out_c,), _weights(rng, out_c)) if seed % 3 else None
    model = one_op_model("CONV_2D", [Tensor((n, h, w, c)), Tensor((out_c, kh, kw, c), _weights(rng, (out_c, kh, kw, c), seed == 5)), bias],
                         Tensor((n, oh, ow, out_c)), options)
    assert_matches_tflm(model, rng, trials=2)


@pytest.mark.parametrize("seed", SEEDS)
def test_depthwise_conv_2d(seed):
    rng = np.random.default_rng(100 + seed)
    (n, h, w, c), (kh, kw), (oh, ow), options = _window(rng, True)
    multiplier = int(rng.integers(1, 3))
    out_c = c * multiplier
    bias = Tensor((out_c,), _weights(rng, out_c))  # TFLM's depthwise crashes without one (the converter always writes it)
    model = one_op_model("DEPTHWISE_CONV_2D", [Tensor((n, h, w, c)), Tensor((1, kh, kw, out_c), _weights(rng, (1, kh, kw, out_c), seed == 5)), bias],
                         Tensor((n, oh, ow, out_c)), {**options, "depthMultiplier": multiplier})
    assert_matches_tflm(model, rng, trials=2)


@pytest.mark.parametrize("seed", SEEDS)
def test_fully_connected(seed):
    rng = np.random.default_rng(200 + seed)
    batches, depth, units = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 12))
    bias = Tensor((units,), _weights(rng, units)) if seed % 3 else None
    # A 4-D input flattens into batches of `depth` (depth spread over its last two axes when it splits).
    shape = (batches, depth) if seed % 2 else (batches, 1, 1, depth)
    model = one_op_model("FULLY_CONNECTED", [Tensor(shape), Tensor((units, depth), _weights(rng, (units, depth), seed == 5)), bias],
                         Tensor((batches, units)), {"fusedActivationFunction": int(rng.choice(ACTIVATIONS))})
    assert_matches_tflm(model, rng, trials=2)


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize("seed", SEEDS)
def test_pooling(op, seed):
    rng = np.random.default_rng(300 + seed)
    (n, h, w, c), (kh, kw), (oh, ow), options = _window(rng, False)
    options = {key: options[key] for key in ("padding", "strideH", "strideW", "fusedActivationFunction")}
    same = options["padding"] == 0
    oh, ow = _out_size(h, kh, options["strideH"], 1, same), _out_size(w, kw, options["strideW"], 1, same)
    if oh < 1 or ow < 1:
        oh, ow, kh, kw = h, w, 1, 1
    model = one_op_model(op, [Tensor((n, h, w, c))], Tensor((n, oh, ow, c)), {**options, "filterHeight": kh, "filterWidth": kw})
    assert_matches_tflm(model, rng, trials=2)


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax(seed):
    rng = np.random.default_rng(400 + seed)
    shape = tuple(int(d) for d in rng.integers(1, 12, size=int(rng.integers(1, 5))))
    beta = float(rng.choice([1.0, 0.5, 2.5, 0.1]))
    model = one_op_model("SOFTMAX", [Tensor(shape)], Tensor(shape), {"beta": beta})
    assert_matches_tflm(model, rng, trials=2)


def _broadcast_pair(rng):
    """Two shapes that broadcast (numpy rules, up to 6-D) and their result."""
    out = tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 7))))
    a = tuple(d if rng.random() < 0.7 else 1 for d in out)
    b = tuple(d if rng.random() < 0.5 else 1 for d in out)[int(rng.integers(0, len(out))):]
    return a, b or (1,), tuple(np.broadcast_shapes(a, b or (1,)))


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("seed", SEEDS)
def test_add_and_mul(op, seed):
    rng = np.random.default_rng(500 + seed)
    a, b, out = _broadcast_pair(rng)
    second = Tensor(b, _weights(rng, b, seed == 5)) if seed % 2 else Tensor(b)  # a constant or a second input
    model = one_op_model(op, [Tensor(a), second], Tensor(out), {"fusedActivationFunction": int(rng.choice(ACTIVATIONS))})
    assert_matches_tflm(model, rng, trials=2)


def test_reshape():
    rng = np.random.default_rng(600)
    model = one_op_model("RESHAPE", [Tensor((2, 3, 4)), Tensor((2,), np.array([4, 6]), np.int32)], Tensor((4, 6)),
                         {"newShape": [4, 6]})
    assert_matches_tflm(model, rng, trials=1)


@pytest.mark.parametrize("seed", range(3))
def test_quantize_and_dequantize(seed):
    rng = np.random.default_rng(700 + seed)
    shape = tuple(int(d) for d in rng.integers(1, 9, size=3))
    scale, zero_point = float(rng.uniform(0.005, 0.1)), int(rng.integers(-128, 128))
    quantize = one_op_model("QUANTIZE", [Tensor(shape)], Tensor(shape, dtype=np.int8, scale=scale, zero_point=zero_point))
    assert_matches_tflm(quantize, rng, trials=2)
    dequantize = one_op_model("DEQUANTIZE", [Tensor(shape, dtype=np.int8, scale=scale, zero_point=zero_point)], Tensor(shape))
    assert_matches_tflm(dequantize, rng, trials=2)


def test_a_float_op_with_int8_weights_is_refused_as_tflm_refuses_it():
    """Hybrid ops (float32 activations, int8 weights): neither TFLM nor the engine runs them."""
    from mcuforge.firmware.engine import EngineError

    model = one_op_model("FULLY_CONNECTED", [Tensor((1, 4)), Tensor((2, 4), np.ones((2, 4)), np.int8, 0.1)], Tensor((1, 2)))
    with pytest.raises(EngineError) as caught:
        run_engine(model, [np.zeros((1, 4), np.float32)])
    assert caught.value.status == "MF_ERR_UNSUPPORTED_TYPE"
    with pytest.raises(RuntimeError, match="failed to allocate"):
        run_tflm(model, [np.zeros((1, 4), np.float32)])
