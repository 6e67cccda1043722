"""mf_fixedpoint.h against values worked out by hand (integer primitives) and float math (the gemmlowp functions)."""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import pytest

from mcuforge.firmware.engine import RUNTIME_DIR
from mcuforge.hostbuild import build_shared_library

Q31 = 2.0**31


@pytest.fixture(scope="module")
def fp():
    sources = [Path(__file__).with_name("fixedpoint_probe.c"), RUNTIME_DIR / "mf_fixedpoint.c"]
    lib = ctypes.CDLL(str(build_shared_library("mf_fixedpoint_probe", sources, [RUNTIME_DIR])))
    for name in ("probe_srdhm", "probe_rounding_divide_by_pot", "probe_mul_by_quantized_multiplier",
                 "probe_exp_on_negative_values", "probe_one_over_one_plus_x", "probe_logistic", "probe_tanh"):
        getattr(lib, name).restype = ctypes.c_int32
    lib.probe_quantize_multiplier.argtypes = [ctypes.c_double, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int)]
    return lib


@pytest.mark.parametrize("a,b,expected", [
    (1 << 30, 1 << 30, 1 << 29),        # 0.5 * 0.5 = 0.25
    (3, 1 << 30, 2),                    # 1.5 rounds up
    (-3, 1 << 30, -1),                  # -1.5 rounds up too (gemmlowp's nudge), not away from zero
    (-(2**31), -(2**31), 2**31 - 1),    # the one overflow saturates
    (2**31 - 1, 2**31 - 1, 2**31 - 2),
])
def test_saturating_rounding_doubling_high_mul(fp, a, b, expected):
    assert fp.probe_srdhm(a, b) == expected


@pytest.mark.parametrize("x,exponent,expected", [
    (5, 1, 3), (-5, 1, -3), (4, 1, 2), (7, 2, 2), (-7, 2, -2), (-6, 2, -2), (1, 1, 1), (-1, 1, -1), (12345, 0, 12345),
])
def test_rounding_divide_by_power_of_two_rounds_half_away_from_zero(fp, x, exponent, expected):
    assert fp.probe_rounding_divide_by_pot(x, exponent) == expected


def test_multiply_by_quantized_multiplier_rounds_twice_as_tflm(fp):
    assert fp.probe_mul_by_quantized_multiplier(1000, 1 << 30, 1) == 1000  # 0.5 * 2^1
    # 5 * 0.5 * 2^-1 = 1.25: TFLM's double rounding gives round(round(2.5) / 2) = round(1.5) = 2, not 1.
    assert fp.probe_mul_by_quantized_multiplier(5, 1 << 30, -1) == 2
    # -5 * 0.5 = -2.5 rounds up to -2 in the high multiply, then -2 / 2 = -1 exactly.
    assert fp.probe_mul_by_quantized_multiplier(-5, 1 << 30, -1) == -1


@pytest.mark.parametrize("real,multiplier,shift", [
    (0.5, 1 << 30, 0),
    (1.0, 1 << 30, 1),
    (0.75, 3 << 29, 0),
    (0.0, 0, 0),
    (2.0**-40, 0, 0),               # below 2^-31 after normalising: flushed to zero
    (1.0 - 2.0**-40, 1 << 30, 1),   # rounds up to 2^31, renormalised
    (float("nan"), 0, 0),
])
def test_quantize_multiplier(fp, real, multiplier, shift):
    m, s = ctypes.c_int32(), ctypes.c_int()
    fp.probe_quantize_multiplier(real, ctypes.byref(m), ctypes.byref(s))
    assert (m.value, s.value) == (multiplier, shift)


@pytest.mark.parametrize("x", [0.0, -0.1, -0.25, -1.0, -2.5, -7.0, -15.9])
def test_exp_on_negative_values_q5(fp, x):
    raw = fp.probe_exp_on_negative_values(round(x * 2**26), 5)
    assert abs(raw / Q31 - math.exp(x)) < 2e-6


@pytest.mark.parametrize("x", [0.0, 0.25, 0.5, 0.9])
def test_one_over_one_plus_x(fp, x):
    raw = fp.probe_one_over_one_plus_x(min(round(x * Q31), 2**31 - 1))
    assert abs(raw / Q31 - 1 / (1 + x)) < 2e-6


@pytest.mark.parametrize("x", [-7.5, -1.0, 0.0, 0.3, 2.0, 7.9])
def test_logistic_and_tanh_q4(fp, x):
    raw = round(x * 2**27)
    assert abs(fp.probe_logistic(raw, 4) / Q31 - 1 / (1 + math.exp(-x))) < 2e-6
    assert abs(fp.probe_tanh(raw, 4) / Q31 - math.tanh(x)) < 2e-6
