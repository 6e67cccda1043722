"""The DSP inner loops (firmware/runtime/kernels/dsp/mfd_*.h) on random shapes, against integer oracles written here.

On the host the loops run with the C stand-ins of the SIMD instructions
(tests/engine/dsp_loops_probe.c); the oracle is TFLM's arithmetic spelled in
Python integers (gemmlowp's rounding doubling high multiply, then a rounding
right shift, both rounding half away from zero). On an emulated Cortex-M4 the
same loops run inside the DEPTHWISE_CONV_2D kernel with the real instructions,
against the TFLM interpreter.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
from engine.oplib import convert_one_op, random_inputs, run_tflm

from mcuforge.firmware.build import build_image
from mcuforge.firmware.engine import RUNTIME_DIR
from mcuforge.firmware.qemu import run_qemu
from mcuforge.hostbuild import build_shared_library

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def _srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = 2**30 if ab >= 0 else 1 - 2**30
    total = ab + nudge
    quotient = abs(total) // 2**31  # C's division truncates toward zero
    return quotient if total >= 0 else -quotient


def _rounding_shift(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def tflm_requantize(acc: int, multiplier: int, shift: int) -> int:
    """TFLM MultiplyByQuantizedMultiplier."""
    left, right = max(shift, 0), max(-shift, 0)
    return _rounding_shift(_srdhm(_wrap32(acc << left), multiplier), right)


@pytest.fixture(scope="module")
def probe():
    lib = ctypes.CDLL(str(build_shared_library("mfd_dsp_loops_probe", [Path(__file__).with_name("dsp_loops_probe.c")], [RUNTIME_DIR])))
    lib.probe_requantize.restype = ctypes.c_int32
    lib.probe_requantize.argtypes = [ctypes.c_int32] * 3
    return lib


def test_the_oracle_rounds_as_tflm_on_hand_worked_values():
    assert tflm_requantize(5, 1 << 30, -1) == 2  # 5 * 0.5 / 2 = 1.25: round(round(2.5) / 2) = round(1.5) = 2
    assert tflm_requantize(-5, 1 << 30, -1) == -1  # -2.5 rounds up to -2 first, then -2 / 2 = -1
    assert tflm_requantize(1000, 1 << 30, 1) == 1000
    assert tflm_requantize(-6, 1 << 30, -2) == -1  # -0.75 rounds to -1 (half of -1.5 .. away from zero)


def test_requantize_equals_tflm_for_every_shift_and_extreme_accumulators(probe):
    rng = np.random.default_rng(3)
    edges = [0, 1, -1, 2, -2, 3, -3, INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1, 1 << 30, -(1 << 30)]
    for shift in range(-31, 8):
        multipliers = [0, 1 << 30, INT32_MAX, *(int(m) for m in rng.integers(1 << 30, 1 << 31, size=6))]
        accs = [*edges, *(int(a) for a in rng.integers(INT32_MIN, INT32_MAX, size=40, endpoint=True)),
                *(int(a) for a in rng.integers(-(1 << 20), 1 << 20, size=40))]
        for multiplier in multipliers:
            for acc in accs:
                want = tflm_requantize(acc, multiplier, shift)
                assert probe.probe_requantize(acc, multiplier, shift) == want, (acc, multiplier, shift)


def reference_depthwise3x3(x, w, bias, multipliers, shifts, stride, pad, input_offset, zero_point, act_min, act_max, out_shape,
                           multiplier=1):
    """Depthwise 3 x 3: output channel c reads input channel c // multiplier; taps outside the input skipped, as
    TFLM's reference kernel does."""
    in_h, in_w, in_c = x.shape
    channels = in_c * multiplier
    out_h, out_w = out_shape
    out = np.zeros((out_h, out_w, channels), np.int8)
    xs = np.repeat(x.astype(np.int64) + input_offset, multiplier, axis=2)
    for oy in range(out_h):
        for ox in range(out_w):
            acc = bias.astype(np.int64).copy()
            for fy in range(3):
                for fx in range(3):
                    iy, ix = oy * stride[0] - pad[0] + fy, ox * stride[1] - pad[1] + fx
                    if 0 <= iy < in_h and 0 <= ix < in_w:
                        acc += w[fy, fx].astype(np.int64) * xs[iy, ix]
            for c in range(channels):
                value = tflm_requantize(_wrap32(int(acc[c])), int(multipliers[c]), int(shifts[c])) + zero_point
                out[oy, ox, c] = min(max(value, act_min), act_max)
    return out


def _random_layer(rng):
    in_c = int(rng.choice([1, 3, 4, 5, 8, 11, 16]))
    multiplier = int(rng.choice([1, 1, 2, 3]))
    in_h, in_w = (int(v) for v in rng.integers(1, 9, size=2))
    if rng.random() < 0.3:  # rows too wide for whole planes in the ring: bands of output rows
        in_h, in_w = int(rng.integers(6, 12)), int(rng.integers(40, 80))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
    pad = tuple(int(v) for v in rng.integers(0, 3, size=2))
    out_h = (in_h + 2 * pad[0] - 3) // stride[0] + 1
    out_w = (in_w + 2 * pad[1] - 3) // stride[1] + 1
    return in_c, multiplier, in_h, in_w, stride, pad, max(out_h, 1), max(out_w, 1)


def _random_weights(rng, channels: int, case: int):
    """Weights, bias, requantization, offsets and an activation range (full on odd cases) for `channels` outputs."""
    w = rng.integers(-127, 128, size=(3, 3, channels), dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=channels, dtype=np.int32)
    multipliers = rng.integers(1 << 30, 1 << 31, size=channels).astype(np.int32)
    shifts = rng.integers(-12, 2, size=channels).astype(np.int32)
    input_offset, zero_point = int(rng.integers(-127, 128)), int(rng.integers(-128, 128))
    act_min, act_max = (-128, 127) if case % 2 else (int(rng.integers(-128, 0)), int(rng.integers(0, 128)))
    return w, bias, multipliers, shifts, input_offset, zero_point, act_min, act_max


def reference_conv(x, w, bias, multipliers, shifts, stride, pad, input_offset, zero_point, act_min, act_max, out_shape):
    """Convolution, weights [out_c][f_h][f_w][in_c]; taps outside the input skipped, as TFLM's reference kernel does."""
    in_h, in_w, _ = x.shape
    out_c, f_h, f_w, _ = w.shape
    out = np.zeros((*out_shape, out_c), np.int8)
    xs = x.astype(np.int64) + input_offset
    for oy in range(out_shape[0]):
        for ox in range(out_shape[1]):
            acc = bias.astype(np.int64).copy()
            for fy in range(f_h):
                for fx in range(f_w):
                    iy, ix = oy * stride[0] - pad[0] + fy, ox * stride[1] - pad[1] + fx
                    if 0 <= iy < in_h and 0 <= ix < in_w:
                        acc += w[:, fy, fx].astype(np.int64) @ xs[iy, ix]
            for c in range(out_c):
                value = tflm_requantize(_wrap32(int(acc[c])), int(multipliers[c]), int(shifts[c])) + zero_point
                out[oy, ox, c] = min(max(value, act_min), act_max)
    return out


def test_conv_rows_equal_the_reference_on_random_shapes(probe):
    """The DSP convolution's 2 x 2 blocks: pointwise layers (1 x 1, stride 1, channels in fours: a pixel pair's
    columns widened in one run) and others, odd pixel and channel counts (a lone last pixel or channel), windows
    not in whole runs of four, right shifts of 0 and 1 (a pair of channels requantized value by value)."""
    rng = np.random.default_rng(9)
    i32 = np.ctypeslib.ndpointer(np.int32, flags="C")
    i8 = np.ctypeslib.ndpointer(np.int8, flags="C")
    probe.probe_conv_rows.argtypes = [i8, *[ctypes.c_int32] * 3, i8, *[ctypes.c_int32] * 3, i32, i32, i32, i32, i32,
                                      ctypes.c_int32, ctypes.c_int32, i8, ctypes.c_void_p, ctypes.c_void_p]
    probe.probe_conv_columns_bytes.argtypes = [ctypes.c_int32]
    probe.probe_conv_columns_bytes.restype = ctypes.c_size_t
    pointwise_cases = 0
    for case in range(60):
        in_c = int(rng.choice([1, 3, 4, 8, 12, 16]))
        out_c = int(rng.integers(1, 10))
        in_h, in_w = (int(v) for v in rng.integers(1, 7, size=2))
        if case % 2:  # pointwise
            f, stride, pad = 1, (1, 1), (0, 0)
            pointwise_cases += in_c % 4 == 0
        else:
            f = int(rng.choice([1, 3]))
            stride = tuple(int(v) for v in rng.integers(1, 3, size=2))
            pad = tuple(int(v) for v in rng.integers(0, f // 2 + 1, size=2))
        out_shape = (max((in_h + 2 * pad[0] - f) // stride[0] + 1, 1), max((in_w + 2 * pad[1] - f) // stride[1] + 1, 1))
        x = rng.integers(-128, 128, size=(in_h, in_w, in_c), dtype=np.int8)
        w = rng.integers(-127, 128, size=(out_c, f, f, in_c), dtype=np.int8)
        _, bias, multipliers, shifts, input_offset, zero_point, act_min, act_max = _random_weights(rng, out_c, case)
        want = reference_conv(x, w, bias, multipliers, shifts, stride, pad, input_offset, zero_point, act_min, act_max,
                              out_shape)
        got = np.zeros((*out_shape, out_c), np.int8)
        requant = ctypes.create_string_buffer(8 * out_c)
        # The columns with a guard zone after them, which the loops must leave alone.
        columns_bytes = probe.probe_conv_columns_bytes(f * f * in_c)
        columns = np.full(columns_bytes // 2 + 16, 0x5A5A, np.uint16)
        probe.probe_conv_rows(x, in_h, in_w, in_c, w, f, f, out_c, bias, multipliers, shifts,
                              np.array([*stride, *pad], np.int32), np.array([input_offset, zero_point, act_min, act_max], np.int32),
                              *out_shape, got, requant, columns.ctypes.data)
        assert np.array_equal(got, want), f"case {case}: {(in_c, out_c, in_h, in_w, f, stride, pad)}"
        assert (columns[columns_bytes // 2:] == 0x5A5A).all(), f"case {case}: the loops wrote past their columns"
    assert pointwise_cases >= 10


def test_depthwise3x3_layers_equal_the_reference_on_random_shapes(probe):
    rng = np.random.default_rng(5)
    i32 = np.ctypeslib.ndpointer(np.int32, flags="C")
    i8 = np.ctypeslib.ndpointer(np.int8, flags="C")
    probe.probe_dw3x3.argtypes = [i8, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, i8, i32, i32, i32,
                                  i32, i32, ctypes.c_int32, ctypes.c_int32, i8, ctypes.c_void_p, ctypes.c_void_p]
    probe.probe_dw3x3_scratch_bytes.argtypes = [ctypes.c_int32] * 4 + [i32]
    probe.probe_dw3x3_scratch_bytes.restype = ctypes.c_size_t
    for case in range(80):
        in_c, multiplier, in_h, in_w, stride, pad, out_h, out_w = _random_layer(rng)
        channels = in_c * multiplier
        x = rng.integers(-128, 128, size=(in_h, in_w, in_c), dtype=np.int8)
        w, bias, multipliers, shifts, input_offset, zero_point, act_min, act_max = _random_weights(rng, channels, case)
        want = reference_depthwise3x3(x, w, bias, multipliers, shifts, stride, pad, input_offset, zero_point, act_min,
                                      act_max, (out_h, out_w), multiplier)
        got = np.zeros((out_h, out_w, channels), np.int8)
        requant = ctypes.create_string_buffer(8 * channels)
        # The scratch with a guard zone after it, which the loops must leave alone.
        geometry = np.array([*stride, *pad], np.int32)
        scratch_bytes = probe.probe_dw3x3_scratch_bytes(in_c, multiplier, out_h, out_w, geometry)
        scratch = np.full(scratch_bytes // 2 + 16, 0x5A5A, np.uint16)
        probe.probe_dw3x3(x, in_h, in_w, in_c, multiplier, w, bias, multipliers, shifts, geometry,
                          np.array([input_offset, zero_point, act_min, act_max], np.int32), out_h, out_w, got, requant,
                          scratch.ctypes.data)
        assert np.array_equal(got, want), f"case {case}: {(in_c, multiplier, in_h, in_w, stride, pad)}"
        assert (scratch[scratch_bytes // 2:] == 0x5A5A).all(), f"case {case}: the loops wrote past their scratch"


def _narrow_layer(probe, x, w, bias, multipliers, shifts, stride, pad, quant, out_shape):
    """A multiplier-1 layer routed as prepare routes narrow ones: the NHWC loops when it fits them, else the
    channel-major loops; its outputs and whether the NHWC loops ran."""
    i32 = np.ctypeslib.ndpointer(np.int32, flags="C")
    i8 = np.ctypeslib.ndpointer(np.int8, flags="C")
    probe.probe_dw3x3_nhwc.restype = ctypes.c_int
    probe.probe_dw3x3_nhwc.argtypes = [i8, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, i8, i32, i32, i32, i32, i32,
                                       ctypes.c_int32, ctypes.c_int32, i8, ctypes.c_void_p]
    in_h, in_w, channels = x.shape
    out_h, out_w = out_shape
    geometry, quant = np.array([*stride, *pad], np.int32), np.array(quant, np.int32)
    got = np.zeros((out_h, out_w, channels), np.int8)
    requant = ctypes.create_string_buffer(8 * channels)
    if probe.probe_dw3x3_nhwc(x, in_h, in_w, channels, w, bias, multipliers, shifts, geometry, quant, out_h, out_w,
                              got, requant):
        return got, True
    scratch = ctypes.create_string_buffer(probe.probe_dw3x3_scratch_bytes(channels, 1, out_h, out_w, geometry))
    probe.probe_dw3x3(x, in_h, in_w, channels, 1, w, bias, multipliers, shifts, geometry, quant, out_h, out_w, got,
                      requant, scratch)
    return got, False


def test_narrow_depthwise3x3_rows_equal_the_reference_on_random_shapes(probe):
    """Narrow layers (multiplier 1) on any shape and requantization: the NHWC loops where they fit, the
    channel-major loops elsewhere (channels not in fours, thin inputs, padding past one, shifts outside 2..23)."""
    rng = np.random.default_rng(6)
    for case in range(40):
        channels, _, in_h, in_w, stride, pad, out_h, out_w = _random_layer(rng)
        in_w = min(in_w, 12)
        out_w = max((in_w + 2 * pad[1] - 3) // stride[1] + 1, 1)
        x = rng.integers(-128, 128, size=(in_h, in_w, channels), dtype=np.int8)
        w, bias, multipliers, shifts, input_offset, zero_point, act_min, act_max = _random_weights(rng, channels, case)
        want = reference_depthwise3x3(x, w, bias, multipliers, shifts, stride, pad, input_offset, zero_point, act_min,
                                      act_max, (out_h, out_w))
        got, _ = _narrow_layer(probe, x, w, bias, multipliers, shifts, stride, pad,
                               (input_offset, zero_point, act_min, act_max), (out_h, out_w))
        assert np.array_equal(got, want), f"case {case}: {(channels, in_h, in_w, stride, pad)}"


def test_depthwise3x3_nhwc_rows_equal_the_reference_on_the_shapes_they_take(probe):
    """The NHWC loops on random layers they fit: channels in fours, inputs from 3 x 3, padding 0 or 1, strides 1 to
    3, right shifts anywhere in 2..23 (the edges included), output zero points far from 0."""
    rng = np.random.default_rng(8)
    for case in range(30):
        channels, stride = 4 * int(rng.integers(1, 5)), tuple(int(v) for v in rng.integers(1, 4, size=2))
        in_h, in_w = int(rng.integers(3, 9)), int(rng.integers(3, 9))
        pad = tuple(int(v) for v in rng.integers(0, 2, size=2))
        out_h, out_w = (in_h + 2 * pad[0] - 3) // stride[0] + 1, (in_w + 2 * pad[1] - 3) // stride[1] + 1
        x = rng.integers(-128, 128, size=(in_h, in_w, channels), dtype=np.int8)
        w, bias, multipliers, _, input_offset, zero_point, act_min, act_max = _random_weights(rng, channels, case)
        shifts = rng.integers(-23, -1, size=channels).astype(np.int32)
        shifts[[0, channels - 1]] = [-23, -2]
        zero_point = int(rng.choice([-128, -100, 100, 127]))
        want = reference_depthwise3x3(x, w, bias * 1000, multipliers, shifts, stride, pad, input_offset, zero_point,
                                      act_min, act_max, (out_h, out_w))
        got, nhwc = _narrow_layer(probe, x, w, bias * 1000, multipliers, shifts, stride, pad,
                                  (input_offset, zero_point, act_min, act_max), (out_h, out_w))
        assert nhwc, f"case {case}: {(channels, in_h, in_w, stride, pad)} should fit the NHWC loops"
        assert np.array_equal(got, want), f"case {case}: {(channels, in_h, in_w, stride, pad)}"


def test_narrow_depthwise3x3_layers_past_the_cached_quads_equal_the_reference(probe):
    """Channels past the first 16 quads (their constants resolved row by row) on the frame loops' shapes: 3 x 3 to
    5 x 4 inputs, strides 1 and 2, SAME. With right shifts in 2..23 (its edges included) the NHWC loops run them;
    with one outside (24 alone, or past 23, 0 and a left shift) or channels not in fours, the channel-major loops."""
    rng = np.random.default_rng(7)
    outside = {1: -24, 6: -30, 66: 0, -1: 1}  # (channel: shift) outside 2..23, a left shift last
    cases = [(72, 5, 4, 1, outside), (69, 3, 3, 1, {}), (68, 5, 5, 2, outside), (72, 5, 4, 1, {1: -24}),
             (68, 5, 5, 2, {66: 1}), (72, 5, 4, 1, {1: -23, 66: -2}), (68, 5, 5, 2, {1: -2, 66: -23})]
    for case, (channels, in_h, in_w, stride, edges) in enumerate(cases):
        out_h, out_w = -(-in_h // stride), -(-in_w // stride)
        pad = (max((out_h - 1) * stride + 3 - in_h, 0) // 2, max((out_w - 1) * stride + 3 - in_w, 0) // 2)
        x = rng.integers(-128, 128, size=(in_h, in_w, channels), dtype=np.int8)
        w, bias, multipliers, _, input_offset, _, act_min, act_max = _random_weights(rng, channels, case)
        zero_point = (100, -90, 127, 127, -128, 127, -128)[case]  # far from 0: past bit 31 shifted beyond 23
        shifts = rng.integers(-12, -1, size=channels).astype(np.int32)  # one-step channels, but for the edges
        for channel, shift in edges.items():
            shifts[channel] = shift
        fits = channels % 4 == 0 and all(-23 <= shift <= -2 for shift in shifts)
        want = reference_depthwise3x3(x, w, bias * 1000, multipliers, shifts, (stride, stride), pad, input_offset,
                                      zero_point, act_min, act_max, (out_h, out_w))
        got, nhwc = _narrow_layer(probe, x, w, bias * 1000, multipliers, shifts, (stride, stride), pad,
                                  (input_offset, zero_point, act_min, act_max), (out_h, out_w))
        assert nhwc == fits, f"case {case}: the wrong loops"
        assert np.array_equal(got, want), f"case {case}: {(channels, in_h, in_w, stride)}"

# (input shape, stride, padding): the 3 x 3 loops' interior and every kind of border, channels in fours and not.
QEMU_DEPTHWISE = [((1, 7, 6, 12), 1, "SAME"), ((1, 9, 8, 7), 2, "SAME"), ((1, 6, 9, 5), 2, "VALID"), ((2, 5, 5, 4), 1, "VALID")]


def assert_qemu_m4_matches_tflm(model: bytes, rng, tmp_path) -> None:
    """The model's DSP firmware on an emulated Cortex-M4 (the asm loops) gives TFLM's outputs for two inputs."""
    model_path = tmp_path / "model.tflite"
    model_path.write_bytes(model)
    vectors = [random_inputs(model, rng)[0] for _ in range(2)]
    image = build_image(model_path, "qemu-m4", out_dir=tmp_path, inputs=np.stack(vectors))
    assert image.board.kernels == "dsp"
    result = run_qemu(image)
    for index, vector in enumerate(vectors):
        want = run_tflm(model, [vector])[0]
        assert np.array_equal(result.outputs[index][0].reshape(-1), want.reshape(-1)), f"vector {index}"


@pytest.mark.slow
@pytest.mark.parametrize("shape, stride, padding", QEMU_DEPTHWISE)
def test_depthwise3x3_on_an_emulated_cortex_m4_matches_tflm(shape, stride, padding, tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(sum(shape) + stride)
    filters = tf.constant(rng.normal(0, 0.5, size=(3, 3, shape[3], 1)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=shape[3]).astype(np.float32))
    fn = lambda x: tf.nn.relu(tf.nn.depthwise_conv2d(x, filters, [1, stride, stride, 1], padding) + bias)  # noqa: E731
    model = convert_one_op(fn, [shape], rng, "DEPTHWISE_CONV_2D", value_range=(-float(rng.uniform(0.5, 3)), float(rng.uniform(0.5, 3))))
    assert_qemu_m4_matches_tflm(model, rng, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["ds_cnn", "mobilenet_v1", "resnet8", "autoencoder"])
def test_zoo_models_with_the_dsp_loops_on_an_emulated_cortex_m4_match_tflm(arch, tmp_path):
    """Whole models: every loop above in the layer shapes and quantizations the pipeline produces."""
    from engine.test_engine_zoo import ZOO_CASES, zoo_int8

    case = next(c for c in ZOO_CASES if c[0] == arch)
    assert_qemu_m4_matches_tflm(zoo_int8(*case), np.random.default_rng(13), tmp_path)
