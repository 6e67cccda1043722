"""LceQuantize, LceBconv2d and LceDequantize against Larq Compute Engine's own interpreter.

Random shapes, channel counts across word boundaries, strides, dilations, the
padding modes (valid, same with one-padding, same with zero-padding and its
correction), fused activations and the three output types (float, int8,
bit-packed). The engine and its prepared image, with the portable and the DSP
kernels, must equal LCE's outputs bit for bit (floats compared as their bits).
"""

from __future__ import annotations

import numpy as np
import pytest
from lce_oplib import Bconv, bconv_model, dequantize_model, quantize_model
from oplib import run_engine, run_prepared

from mcuforge.deploy.lce import run_lce
from mcuforge.firmware.engine import Engine
from mcuforge.firmware.prepared import PreparedEngine, prepared_image


def assert_matches_lce(model: bytes, inputs: list[np.ndarray]) -> None:
    expected = [output[0] for output in run_lce(model, [x[None] for x in inputs])]
    with Engine(model, kernels="dsp") as engine:  # kernels/dsp/ on the host, its SIMD instructions as C
        dsp = engine.invoke(list(inputs))
    with PreparedEngine.from_image(prepared_image(model, "dsp"), "dsp") as engine:
        dsp_prepared = engine.invoke(list(inputs))
    for actual in (run_engine(model, inputs), run_prepared(model, inputs), dsp, dsp_prepared):
        assert len(actual) == len(expected)
        for got, want in zip(actual, expected):
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got.view(np.int32) if got.dtype == np.float32 else got.astype(np.int32),
                                          want.view(np.int32) if want.dtype == np.float32 else want.astype(np.int32))


def bconv_case(seed: int) -> Bconv:
    rng = np.random.default_rng(seed)
    fh, fw = (int(k) for k in rng.integers(1, 4, size=2))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if seed % 2 else (1, 1)
    dilation = (1, 1) if seed % 2 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    cin = int(rng.choice([1, 7, 32, 33, 70]))
    h = int(rng.integers((fh - 1) * dilation[0] + 2, 9))
    w = int(rng.integers((fw - 1) * dilation[1] + 2, 9))
    output = ("float32", "int8", "bitpacked")[seed % 3]
    padding, pad_value = [("VALID", 1), ("SAME", 1), ("SAME", 0)][(seed // 3) % 3]
    if pad_value == 0:
        output = "float32"  # LCE pads with zeros only for float output without activation
    activation = 0 if pad_value == 0 or output == "bitpacked" else int(rng.integers(0, 4))
    out_c = int(rng.choice([1, 5, 32, 40]))
    return Bconv((1 + seed % 2, h, w, cin), out_c, (fh, fw), stride, dilation, padding, pad_value, output, activation)


@pytest.mark.parametrize("seed", range(12))
def test_bconv2d(seed):
    rng = np.random.default_rng(1000 + seed)
    case = bconv_case(seed)
    model = bconv_model(case, rng)
    assert_matches_lce(model, [rng.normal(size=case.shape).astype(np.float32)])


@pytest.mark.parametrize("dtype, channels", [(np.float32, 5), (np.float32, 64), (np.int8, 37)])
def test_quantize(dtype, channels):
    rng = np.random.default_rng(channels)
    shape = (2, 3, channels)
    quant = (0.1, int(rng.integers(-30, 30))) if dtype == np.int8 else None
    model = quantize_model(shape, dtype, quant)
    if dtype == np.int8:
        x = rng.integers(-128, 128, size=shape).astype(np.int8)
    else:
        x = rng.normal(size=shape).astype(np.float32)
        x.flat[:4] = [0.0, -0.0, 1e-30, -1e-30]  # the sign convention at zero
    assert_matches_lce(model, [x])


@pytest.mark.parametrize("dtype, channels", [(np.float32, 45), (np.int8, 33), (np.int8, 8)])
def test_dequantize(dtype, channels):
    rng = np.random.default_rng(channels)
    shape = (1, 2, channels)
    quant = (float(rng.uniform(0.004, 0.6)), int(rng.integers(-100, 100))) if dtype == np.int8 else None
    model = dequantize_model(shape, dtype, quant)
    assert_matches_lce(model, [rng.normal(size=shape).astype(np.float32)])
