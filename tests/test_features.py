"""The fixed-point feature extractor (firmware/features/) against TensorFlow's float signal ops."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge import features as F

# Worst-case gap to the float64 reference, in log2 units of power (0.02 log2 = 0.06 dB), for mel
# bands within DYNAMIC_RANGE log2 units (96 dB) of the frame's total power. Output rounding to Q6
# alone contributes 1/128 = 0.0078. Deeper bands meet the FFT's rounding-noise floor (about 2^-40
# of the frame's power) and get the looser DEEP_TOLERANCE; so do MFCCs of frames holding such bands.
DYNAMIC_RANGE = 32
LOGMEL_TOLERANCE = 0.02
MFCC_TOLERANCE = 0.03
DEEP_TOLERANCE = 0.25


def _clips() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(16000) / 16000
    tone = 3000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 300, t.size)
    chirp = 12000 * np.sin(2 * np.pi * (100 + 3000 * t) * t)
    return np.stack(
        [
            tone.astype(np.int16),
            (tone / 60).astype(np.int16),  # quiet: exercises the block normalization
            chirp.astype(np.int16),
            rng.integers(-32768, 32768, t.size).astype(np.int16),  # full-scale noise: overflow margins
        ]
    )


def _tf_reference(clip: np.ndarray, stride: int = 320):
    """log2 mel power floored at 1, its MFCCs and log2 of each frame's power, in float64 by tf.signal."""
    import tensorflow as tf

    hann = lambda n, dtype: tf.signal.hann_window(n, periodic=True, dtype=dtype)  # noqa: E731
    stft = tf.signal.stft(tf.constant(clip.astype(np.float64)), 480, stride, 512, window_fn=hann)
    power = tf.math.real(stft * tf.math.conj(stft))
    weights = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 4000.0, dtype=tf.float64)
    log_mel = tf.math.log(tf.maximum(tf.tensordot(power, weights, 1), 1.0)) / np.log(2.0)
    mfcc = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)
    return log_mel.numpy(), mfcc.numpy(), np.log2(tf.reduce_sum(power, axis=-1).numpy())


def test_logmel_and_mfcc_match_float_reference():
    clips = _clips()
    log_mel = F.extract(clips, "logmel") * F.SCALE
    mfcc = F.extract(clips, "mfcc", 13) * F.SCALE
    assert log_mel.shape == (4, 49, 40) and mfcc.shape == (4, 49, 13)
    deep_bands = 0
    for i, clip in enumerate(clips):
        ref_log_mel, ref_mfcc, frame_power = _tf_reference(clip)
        within = ref_log_mel >= frame_power[:, None] - DYNAMIC_RANGE
        deep_bands += int((~within).sum())
        log_mel_error = np.abs(log_mel[i] - ref_log_mel)
        assert log_mel_error[within].max() <= LOGMEL_TOLERANCE, i
        assert log_mel_error.max() <= DEEP_TOLERANCE, i
        mfcc_error = np.abs(mfcc[i] - ref_mfcc[:, :13])
        assert (mfcc_error[within.all(axis=1)] <= MFCC_TOLERANCE).all(), i
        assert mfcc_error.max() <= DEEP_TOLERANCE, i
    assert deep_bands > 0  # the chirp's far sidelobes do reach below the stated range


@pytest.mark.parametrize("stride", [160, 480, 640])  # below, at and above the 480-sample window
def test_other_frame_strides_frame_where_tensorflow_does(stride):
    """Frame f of a clip at any stride is the one-window clip starting at sample f * stride, bit for bit, and within
    the tolerance of tf.signal's frames at that stride; a stride above the window skips the samples between."""
    clip = _clips()[2]
    frames = F.extract(clip, "mfcc", 13, stride=stride)
    starts = np.arange(0, clip.size - 480 + 1, stride)
    assert frames.shape == (len(starts), 13) == (F.num_frames(clip.size, stride), 13)
    for f, start in enumerate(starts):
        np.testing.assert_array_equal(frames[f], F.extract(clip[start : start + 480], "mfcc", 13)[0])
    _, ref_mfcc, _ = _tf_reference(clip, stride)
    assert np.abs(frames * F.SCALE - ref_mfcc[:, :13]).max() <= DEEP_TOLERANCE


def test_mel_triangles_are_tensorflows():
    import tensorflow as tf

    expected = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 4000.0, dtype=tf.float64).numpy()
    np.testing.assert_allclose(F.mel_weights(), expected, atol=1e-9)


def test_silence_is_the_floor_exactly():
    """All-zero audio has no power: every log-mel value is the floor 0, so every MFCC is 0."""
    zeros = np.zeros(16000, np.int16)
    assert not F.extract(zeros, "logmel").any()
    assert not F.extract(zeros, "mfcc", 10).any()


def test_doubling_a_quiet_signal_adds_exactly_two_log2_units():
    """Power scales by 4: +2.0 log2 = +128 in Q6, exactly, when normalization shifts left for both."""
    rng = np.random.default_rng(5)
    quiet = rng.integers(-15, 16, 16000).astype(np.int16)  # |x * hann| < 2^19: lossless left shifts
    base = F.extract(quiet, "logmel").astype(np.int32)
    doubled = F.extract(quiet * np.int16(2), "logmel").astype(np.int32)
    above_floor = base > 0
    assert above_floor.mean() > 0.99
    np.testing.assert_array_equal(doubled[above_floor] - base[above_floor], 2 << F.FRAC_BITS)


def test_deterministic_and_batch_independent():
    clips = _clips()
    first = F.extract(clips, "mfcc", 10)
    assert first.dtype == np.int16
    np.testing.assert_array_equal(first, F.extract(clips, "mfcc", 10))
    np.testing.assert_array_equal(first[2], F.extract(clips[2], "mfcc", 10))
    # MFCCs are a prefix: asking for fewer coefficients gives the same leading ones.
    np.testing.assert_array_equal(first[..., :5], F.extract(clips, "mfcc", 5))


@pytest.mark.parametrize("stride, count", [(320, 199), (480, 133), (640, 100)])  # 1 + (64000 - 480) // stride frames
def test_stream_in_random_chunks_equals_clip(stride, count):
    rng = np.random.default_rng(3)
    audio = np.concatenate(_clips())  # 4 s
    expected = F.extract(audio, "mfcc", 10, stride=stride)
    stream = F.Stream("mfcc", 10, stride=stride)
    frames, position = [], 0
    while position < audio.size:
        size = int(rng.integers(0, 900))
        frames.append(stream.push(audio[position : position + size]))
        position += size
    np.testing.assert_array_equal(np.concatenate(frames), expected)
    assert expected.shape == (F.num_frames(64000, stride), 10) == (count, 10)


def _python_normalized(frames: np.ndarray, how: str) -> np.ndarray:
    """kwsf_normalize's definition in Python integers and fractions, clip by clip and column by column."""
    from fractions import Fraction
    from math import floor, isqrt

    def rounded(value: Fraction) -> int:  # to nearest, ties away from zero
        return int(np.sign(value)) * floor(abs(value) + Fraction(1, 2))

    out = np.empty(frames.shape, np.int64)
    for clip in range(frames.shape[0]):
        for column in range(frames.shape[2]):
            values = [int(v) for v in frames[clip, :, column]]
            centred = [v - rounded(Fraction(sum(values), len(values))) for v in values]
            if how == "mean_variance":
                deviation = isqrt(sum(c * c for c in centred) // len(values))
                centred = [rounded(Fraction(c * 64, deviation)) if deviation else 0 for c in centred]
            out[clip, :, column] = centred
    return np.clip(out, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("how", ["mean", "mean_variance"])
def test_normalization_matches_python_on_the_extractors_output(how):
    clips = _clips()
    for frames in (F.extract(clips, "mfcc", 13), F.extract(clips, "logmel")):
        normalized = F.normalize(frames, how)
        np.testing.assert_array_equal(normalized, _python_normalized(frames, how))
        np.testing.assert_array_equal(F.normalize(frames[2], how), normalized[2])  # one clip alone
        mean, deviation = normalized.mean(axis=1), normalized.std(axis=1)
        if how == "mean":
            assert np.abs(mean).max() <= 0.5  # every column centred
        else:  # a column that varies by more than a log2 unit: centred, deviation 64 (the floors cost <= 1/64)
            varied = frames.std(axis=1) > 64
            assert varied.sum() > 10 and (np.abs(mean[varied]) <= 1.0).all() and (np.abs(deviation[varied] - 64.7) < 1.0).all()
        np.testing.assert_array_equal(F.normalize(frames, "none"), frames)
    extremes = np.array([[[32767, -32768], [-32768, 32767], [-32768, 32767]]], np.int16)  # means -10923 and 10922
    np.testing.assert_array_equal(F.normalize(extremes, "mean"), [[[32767, -32768], [-21845, 21845], [-21845, 21845]]])
    np.testing.assert_array_equal(F.normalize(extremes, "mean_variance"), _python_normalized(extremes, "mean_variance"))
    np.testing.assert_array_equal(F.normalize(np.full((1, 49, 3), 640, np.int16), "mean_variance"), np.zeros((1, 49, 3)))


def test_mean_normalization_removes_a_fixed_channel_tilt():
    """A microphone's fixed EQ adds the same amount to a log-mel band in every frame: normalized, it is gone."""
    frames = F.extract(_clips()[:3], "logmel")
    tilt = np.round(np.linspace(-6.0, 4.0, F.MEL_BINS) * 64).astype(np.int16)  # -6..+4 log2 units across the bands
    for how in ("mean", "mean_variance"):
        np.testing.assert_array_equal(F.normalize(frames + tilt, how), F.normalize(frames, how))
        assert not np.array_equal(F.normalize(frames, how), frames)


def test_bad_arguments_are_named():
    with pytest.raises(MCUForgeError, match="features: expected one of logmel, mfcc. Received: 'mel'"):
        F.extract(np.zeros(16000, np.int16), "mel")
    with pytest.raises(MCUForgeError, match="num_mfcc: expected 1..13. Received: 14"):
        F.extract(np.zeros(16000, np.int16), "mfcc", 14)
    with pytest.raises(MCUForgeError, match="expected int16 samples"):
        F.extract(np.zeros(16000, np.float32))
    with pytest.raises(MCUForgeError, match=r"frame stride: expected 1..16000 samples \(up to 1000 ms\). Received: 0"):
        F.extract(np.zeros(16000, np.int16), stride=0)
    with pytest.raises(MCUForgeError, match="frame stride: expected 1..16000 samples"):
        F.Stream("mfcc", 10, stride=16001)


def test_generated_tables_are_committed():
    assert F.TABLES_FILE.read_text() == F.generate_tables_source()


def test_builds_for_cortex_m_with_strict_flags_and_no_floating_point(tmp_path):
    """Built for a Cortex-M4F with its FPU enabled, the compiler still emits no floating-point instruction."""
    import re

    for source in F.SOURCES:
        obj = tmp_path / (source.stem + ".o")
        subprocess.run(
            ["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-mcpu=cortex-m4", "-mthumb",
             "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-c", str(source), "-o", str(obj)],
            check=True,
        )  # fmt: skip
        disassembly = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True, text=True, check=True).stdout
        assert "kwsf_" in disassembly or source.stem.endswith("tables")
        assert not re.search(r"\tv(add|sub|mul|div|cvt|mov|ldr|str|ldm|stm|fm|fn|neg|abs|sqrt|cmp|push|pop)", disassembly)


SANITIZED_RUN = """
import numpy as np
from mcuforge import features as F
lib = F.library(sanitize=True)
rng = np.random.default_rng(1)
clips = rng.integers(-32768, 32768, (3, 16000)).astype(np.int16)
clips[1] //= 300
assert np.array_equal(F.extract(clips, "logmel", lib=lib), F.extract(clips, "logmel"))
assert np.array_equal(F.extract(clips, "mfcc", 13, lib=lib), F.extract(clips, "mfcc", 13))
stream = F.Stream("mfcc", 10, lib=lib)
out = np.concatenate([stream.push(c[:7001]) for c in clips] + [stream.push(c[7001:]) for c in clips])
pieces = [c[:7001] for c in clips] + [c[7001:] for c in clips]
wide = F.Stream("mfcc", 10, stride=640, lib=lib)  # skips samples between windows
assert np.array_equal(np.concatenate([wide.push(p) for p in pieces]), F.extract(np.concatenate(pieces), "mfcc", 10, stride=640))
mfcc = F.extract(clips, "mfcc", 10)
assert np.array_equal(F.normalize(mfcc, "mean_variance", lib=lib), F.normalize(mfcc, "mean_variance"))
print("frames", len(out))
"""


def test_sanitizer_build_agrees(tmp_path):
    """ASan + UBSan build on a few clips: no report (reports abort), identical features."""
    libasan = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0"}
    result = subprocess.run([sys.executable, "-c", SANITIZED_RUN], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frames" in result.stdout


def test_c_status_codes():
    """Every refusal returns its status and writes nothing; a refused stream push consumes nothing."""
    import ctypes

    lib = F.library()
    i16p = ctypes.POINTER(ctypes.c_int16)
    clip = np.ones(16000, np.int16)
    out = np.full((49, 40), 7, np.int16)
    workspace, produced = F._Workspace(), ctypes.c_int32(-1)

    def clip_status(samples, n, kind, count, max_frames, stride=320):
        return lib.kwsf_clip(samples, n, stride, kind, count, ctypes.byref(workspace), out.ctypes.data_as(i16p), max_frames, ctypes.byref(produced))

    data = clip.ctypes.data_as(i16p)
    assert clip_status(None, 16000, 0, 40, 49) == 1  # KWSF_ERR_NULL
    assert clip_status(data, 16000, 2, 40, 49) == 2  # KWSF_ERR_KIND
    assert clip_status(data, 16000, 0, 10, 49) == 3  # KWSF_ERR_COUNT: log-mel is always 40 wide
    assert clip_status(data, 16000, 1, 0, 49) == 3
    assert clip_status(data, 16000, 0, 40, 48) == 4  # KWSF_ERR_CAPACITY
    assert clip_status(data, -1, 0, 40, 49) == 5  # KWSF_ERR_LENGTH
    assert clip_status(data, 16000, 0, 40, 49, stride=0) == 6  # KWSF_ERR_STRIDE
    assert clip_status(data, 16000, 0, 40, 49, stride=16001) == 6
    assert lib.kwsf_num_frames(16000, 0) == 0 and lib.kwsf_num_frames(16000, 16000) == 1
    assert (out == 7).all() and produced.value == -1
    assert clip_status(data, 479, 0, 40, 0) == 0 and produced.value == 0  # shorter than a window: no frame

    stream = F.Stream("logmel")
    stream.push(clip[:300])
    status = lib.kwsf_stream_push(
        ctypes.byref(stream._state), data, 500, 0, 40, ctypes.byref(workspace), out.ctypes.data_as(i16p), 1, ctypes.byref(produced)
    )
    assert status == 4 and stream._state.count == 300
    assert stream.push(clip[:180]).shape == (1, 40)  # 300 + 180 = one full window
    assert lib.kwsf_stream_init(ctypes.byref(stream._state), 0) == 6 and lib.kwsf_stream_init(None, 320) == 1

    assert lib.kwsf_normalize(None, 49, 10, 1) == 1
    for frames, count, norm, status in ((49, 10, 3, 2), (0, 10, 1, 5), (65536, 10, 1, 5), (49, 0, 1, 3), (49, 41, 2, 3)):
        assert lib.kwsf_normalize(out.ctypes.data_as(i16p), frames, count, norm) == status
    assert (out == 7).all()
    with pytest.raises(MCUForgeError, match="feature normalization: expected one of none, mean, mean_variance. Received: 'cmn'"):
        F.normalize(out, "cmn")


def test_streamed_frames_give_every_one_second_window_on_the_20ms_grid():
    """The transcript demo classifies the last 49 streamed frames: they are exactly that second's features."""
    audio = np.concatenate(_clips())
    streamed = F.Stream("mfcc", 10).push(audio)
    for start_frame in (0, 1, 37, 150):
        start = start_frame * F.STRIDE
        np.testing.assert_array_equal(streamed[start_frame : start_frame + 49], F.extract(audio[start : start + 16000], "mfcc", 10))
