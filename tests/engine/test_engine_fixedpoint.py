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


def _tflm_quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier in Python floats (frexp, round half away from zero)."""
    if real == 0.0 or not abs(real) < 2.0**31:
        return 0, 0
    q, exponent = math.frexp(real)
    fixed = math.floor(q * Q31 + 0.5)
    if fixed == 2**31:
        fixed //= 2
        exponent += 1
    if exponent < -31:
        return 0, 0
    return fixed, exponent


def _scales(rng) -> list[tuple[float, float, float]]:
    """Random scale triples over the float range conv layers meet, plus subnormals, zeros and exact ratios."""
    import numpy as np

    def draw(n, low, high):
        return (rng.random(n) * 2.0 ** rng.integers(low, high, n)).astype(np.float32)

    n = 4000
    triples = list(zip(draw(n, -20, 4), draw(n, -20, 4), draw(n, -20, 4)))
    triples += list(zip(draw(200, -140, 20), draw(200, -140, 20), draw(200, -140, 20)))
    tiny = np.float32(1e-45)  # the smallest subnormal
    triples += [(np.float32(0.5), np.float32(0.5), np.float32(0.25)), (np.float32(0), np.float32(1), np.float32(1)),
                (np.float32(1), np.float32(1), np.float32(0)), (tiny, np.float32(3), np.float32(7)),
                (np.float32(3e38), np.float32(3e38), tiny), (np.float32(1), np.float32(1), np.float32(3))]
    # Exact products whose q * 2^31 ends in exactly one half: where round half away from zero matters.
    ties = []
    for i in range(1, 4000, 3):
        a, b = (2**23 + i) / 2**23, (2**9 + i % 97 * 2 + 1) / 2**9
        q, _ = math.frexp(a * b)
        if (q * Q31) % 1 == 0.5:
            ties.append((np.float32(a), np.float32(b), np.float32(0.25)))
    assert len(ties) >= 50
    triples += ties
    return [tuple(float(v) for v in t) for t in triples]


def test_requant_of_scales_is_tflm_quantize_multiplier_of_the_double_quotient(fp):
    """Integer-only requantization equals TFLM's double arithmetic on every triple, boundaries included."""
    import numpy as np

    fp.probe_requant_of_scales.argtypes = [ctypes.c_float, ctypes.c_float, ctypes.c_float,
                                           ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int)]
    m, s = ctypes.c_int32(), ctypes.c_int()
    mismatches = []
    for a, b, c in _scales(np.random.default_rng(7)):
        fp.probe_requant_of_scales(a, b, c, ctypes.byref(m), ctypes.byref(s))
        expected = _tflm_quantize_multiplier(a * b / c if c != 0.0 else math.inf)
        if (m.value, s.value) != expected:
            mismatches.append((a, b, c, (m.value, s.value), expected))
    assert mismatches == []
