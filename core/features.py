"""Python side of the fixed-point keyword-spotting feature extractor in firmware/features/.

Training calls the C99 extractor through ctypes, so the device (which compiles
the same sources) computes bit-identical features. It lives in the package root
because both training and the firmware use it. This module also generates the
extractor's constant tables (`python -m mcuforge.features` rewrites
kws_features_tables.c); a test checks the committed file matches.

Example:
    >>> import numpy as np
    >>> from mcuforge import features
    >>> features.extract(np.zeros((1, 16000), np.int16), "mfcc", 10).shape
    (1, 49, 10)
"""

from __future__ import annotations

import ctypes
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.hostbuild import FIRMWARE_DIR, SANITIZE_FLAGS, build_shared_library

SOURCE_DIR = FIRMWARE_DIR / "features"
SOURCES = (SOURCE_DIR / "kws_features.c", SOURCE_DIR / "kws_features_tables.c")
TABLES_FILE = SOURCE_DIR / "kws_features_tables.c"
KINDS = {"logmel": 0, "mfcc": 1}
NORMALIZATIONS = {"none": 0, "mean": 1, "mean_variance": 2}  # kwsf_norm_t
STATUS = {
    0: "ok", 1: "null pointer", 2: "unknown kind", 3: "feature count does not fit the kind", 4: "output too small", 5: "length out of range",
    6: "frame stride out of range",
}


def _header_constants() -> dict[str, int]:
    """The KWSF_* #defines of kws_features.h: the one definition of the framing, shared with C."""
    text = (SOURCE_DIR / "kws_features.h").read_text()
    return {name: int(value) for name, value in re.findall(r"#define KWSF_(\w+) (-?\d+)\n", text)}


CONSTANTS = _header_constants()
SAMPLE_RATE = CONSTANTS["SAMPLE_RATE"]
WINDOW = CONSTANTS["WINDOW"]
STRIDE = CONSTANTS["STRIDE"]  # the default frame stride, in samples
MAX_STRIDE = CONSTANTS["MAX_STRIDE"]
DEFAULT_STRIDE_MS = STRIDE * 1000 // SAMPLE_RATE  # the data sets' frame_stride_ms
MAX_STRIDE_MS = MAX_STRIDE * 1000 // SAMPLE_RATE
FFT_SIZE = CONSTANTS["FFT_SIZE"]
MEL_BINS = CONSTANTS["MEL_BINS"]
MAX_MFCC = CONSTANTS["MAX_MFCC"]
FRAC_BITS = CONSTANTS["FRAC_BITS"]
SCALE = 1.0 / (1 << FRAC_BITS)  # float feature = int16 feature * SCALE (log2 units)


def num_frames(n_samples: int, stride: int = STRIDE) -> int:
    """Frames a clip of `n_samples` makes every `stride` samples (one second: 49 at 20 ms, 33 at 30 ms, 25 at 40 ms)."""
    return 0 if n_samples < WINDOW else 1 + (n_samples - WINDOW) // check_stride(stride)


def check_stride(stride: int) -> int:
    """`stride` (samples) if the extractor takes it; MCUForgeError naming the range otherwise."""
    if not 1 <= stride <= MAX_STRIDE:
        raise MCUForgeError(f"frame stride: expected 1..{MAX_STRIDE} samples (up to {MAX_STRIDE_MS} ms). Received: {stride}")
    return stride


def stride_samples(stride_ms: int) -> int:
    """The frame stride in samples of one given in milliseconds (16 samples a millisecond)."""
    return check_stride(stride_ms * SAMPLE_RATE // 1000)


def features_per_frame(kind: str, num_mfcc: int) -> int:
    if kind not in KINDS:
        raise MCUForgeError(f"features: expected one of {', '.join(KINDS)}. Received: {kind!r}")
    if kind == "logmel":
        return MEL_BINS
    if not 1 <= num_mfcc <= MAX_MFCC:
        raise MCUForgeError(f"num_mfcc: expected 1..{MAX_MFCC}. Received: {num_mfcc}")
    return num_mfcc


# --- constant tables -------------------------------------------------------


def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def mel_weights() -> np.ndarray:
    """[FFT_SIZE/2+1, MEL_BINS] triangular HTK-mel weights (tf.signal.linear_to_mel_weight_matrix's definition)."""
    bins = FFT_SIZE // 2 + 1
    bin_mel = _hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, bins))[1:]
    edges = np.linspace(_hz_to_mel(CONSTANTS["LOWER_HZ"]), _hz_to_mel(CONSTANTS["UPPER_HZ"]), MEL_BINS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - lower) / (center - lower)
    falling = (upper - bin_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, MEL_BINS)), weights])  # the DC bin carries no weight


def _q(values, bits: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(values, np.float64) * (1 << bits)), info.min, info.max).astype(dtype)


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 12) -> str:
    flat = [str(int(v)) for v in np.asarray(values).ravel()]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    return f"const {ctype} {name} = {{\n    {body}\n}};\n"


def generate_tables_source() -> str:
    """The text of kws_features_tables.c: window, twiddles, mel triangles and DCT in fixed point."""
    n = np.arange(WINDOW)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WINDOW)  # periodic Hann, as tf.signal.hann_window
    k = np.arange(FFT_SIZE // 2)
    weights = _q(mel_weights(), 15, np.int16)
    first, count, offset, packed = [], [], [], []
    for m in range(MEL_BINS):
        nonzero = np.flatnonzero(weights[:, m])
        first.append(nonzero[0])
        count.append(nonzero[-1] - nonzero[0] + 1)
        offset.append(len(packed))
        packed.extend(weights[nonzero[0] : nonzero[-1] + 1, m])
    mel_index = np.arange(MEL_BINS)
    dct = np.sqrt(2.0 / MEL_BINS) * np.cos(np.pi * np.arange(MAX_MFCC)[:, None] * (2 * mel_index + 1) / (2 * MEL_BINS))
    return "".join(
        [
            "/* Generated by `python -m mcuforge.features`: do not edit by hand. */\n",
            '#include "kws_features_tables.h"\n\n',
            "#if KWSF_MEL_WEIGHT_COUNT != " + str(len(packed)) + "\n#error \"KWSF_MEL_WEIGHT_COUNT must be "
            + str(len(packed)) + ": update kws_features_tables.h\"\n#endif\n\n",
            _c_array("int32_t", "kwsf_hann_q30[KWSF_WINDOW]", _q(hann, 30, np.int32), 8),
            _c_array("int32_t", "kwsf_cos_q30[KWSF_FFT_SIZE / 2]", _q(np.cos(2 * np.pi * k / FFT_SIZE), 30, np.int32), 8),
            _c_array("int32_t", "kwsf_sin_q30[KWSF_FFT_SIZE / 2]", _q(np.sin(2 * np.pi * k / FFT_SIZE), 30, np.int32), 8),
            _c_array("int16_t", "kwsf_mel_first_bin[KWSF_MEL_BINS]", np.array(first)),
            _c_array("int16_t", "kwsf_mel_num_bins[KWSF_MEL_BINS]", np.array(count)),
            _c_array("int16_t", "kwsf_mel_offset[KWSF_MEL_BINS]", np.array(offset)),
            _c_array("int16_t", "kwsf_mel_weights_q15[KWSF_MEL_WEIGHT_COUNT]", np.array(packed)),
            _c_array("int16_t", "kwsf_dct_q15[KWSF_MAX_MFCC * KWSF_MEL_BINS]", _q(dct, 15, np.int16), 10),
        ]
    )


# --- ctypes binding --------------------------------------------------------


class _Workspace(ctypes.Structure):
    _fields_ = [("re", ctypes.c_int32 * FFT_SIZE), ("im", ctypes.c_int32 * FFT_SIZE)]


class _Stream(ctypes.Structure):
    _fields_ = [("pending", ctypes.c_int16 * WINDOW), ("count", ctypes.c_int32), ("stride", ctypes.c_int32)]


def _bind(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    i16p, i32p = ctypes.POINTER(ctypes.c_int16), ctypes.POINTER(ctypes.c_int32)
    lib.kwsf_num_frames.argtypes = [ctypes.c_int32, ctypes.c_int32]
    lib.kwsf_num_frames.restype = ctypes.c_int32
    lib.kwsf_clip.argtypes = [i16p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int, ctypes.c_int32, ctypes.POINTER(_Workspace), i16p, ctypes.c_int32, i32p]
    lib.kwsf_clip.restype = ctypes.c_int
    lib.kwsf_normalize.argtypes = [i16p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int]
    lib.kwsf_normalize.restype = ctypes.c_int
    lib.kwsf_stream_init.argtypes = [ctypes.POINTER(_Stream), ctypes.c_int32]
    lib.kwsf_stream_init.restype = ctypes.c_int
    lib.kwsf_stream_push.argtypes = [
        ctypes.POINTER(_Stream), i16p, ctypes.c_int32, ctypes.c_int, ctypes.c_int32, ctypes.POINTER(_Workspace), i16p, ctypes.c_int32, i32p
    ]
    lib.kwsf_stream_push.restype = ctypes.c_int
    return lib


@lru_cache(maxsize=None)
def library(sanitize: bool = False) -> ctypes.CDLL:
    """The extractor compiled for the host (optionally with ASan/UBSan), built once per source content."""
    flags = ("-O1", "-g", *SANITIZE_FLAGS) if sanitize else ("-O2",)
    return _bind(build_shared_library("kws_features" + ("_asan" if sanitize else ""), list(SOURCES), [SOURCE_DIR], flags))


def _check(status: int, call: str) -> None:
    if status != 0:
        raise MCUForgeError(f"{call} failed with status {status} ({STATUS.get(status, 'unknown')})")


def _as_int16(samples) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        raise MCUForgeError(f"audio: expected int16 samples. Received dtype {samples.dtype}; scale and convert first")
    return np.ascontiguousarray(samples)


def extract(clips, kind: str = "mfcc", num_mfcc: int = 10, stride: int = STRIDE, lib: ctypes.CDLL | None = None) -> np.ndarray:
    """int16 features [clips, frames, features] of int16 audio [clips, samples] (one clip: [samples]), a frame every
    `stride` samples."""
    clips = _as_int16(clips)
    single = clips.ndim == 1
    clips = np.atleast_2d(clips)
    width = features_per_frame(kind, num_mfcc)
    frames = num_frames(clips.shape[1], stride)
    out = np.zeros((clips.shape[0], frames, width), np.int16)
    lib = lib or library()
    workspace = _Workspace()
    produced = ctypes.c_int32()
    i16p = ctypes.POINTER(ctypes.c_int16)
    for i, clip in enumerate(clips):
        row = out[i]
        status = lib.kwsf_clip(
            clip.ctypes.data_as(i16p), clip.shape[0], stride, KINDS[kind], width, ctypes.byref(workspace),
            row.ctypes.data_as(i16p), frames, ctypes.byref(produced),
        )
        _check(status, "kwsf_clip")
    return out[0] if single else out


def normalization_code(how: str) -> int:
    """The extractor's kwsf_norm_t of normalization `how`; MCUForgeError naming the choices for any other."""
    if how not in NORMALIZATIONS:
        raise MCUForgeError(f"feature normalization: expected one of {', '.join(NORMALIZATIONS)}. Received: {how!r}")
    return NORMALIZATIONS[how]


def normalize(frames, how: str, lib: ctypes.CDLL | None = None) -> np.ndarray:
    """int16 features [clips, frames, features] (one clip: [frames, features]) normalized per clip by the
    extractor's kwsf_normalize (a copy): `how` is "mean" (cepstral mean normalization), "mean_variance"
    (and unit deviation, 1 << FRAC_BITS) or "none"."""
    code = normalization_code(how)
    out = np.array(_as_int16(frames), np.int16, order="C", ndmin=3)
    lib = lib or library()
    i16p = ctypes.POINTER(ctypes.c_int16)
    for clip in out:
        _check(lib.kwsf_normalize(clip.ctypes.data_as(i16p), clip.shape[0], clip.shape[1], code), "kwsf_normalize")
    return out[0] if np.ndim(frames) == 2 else out


class Stream:
    """Sliding-window extraction over audio arriving in chunks: the on-device transcript's front end."""

    def __init__(self, kind: str = "mfcc", num_mfcc: int = 10, stride: int = STRIDE, lib: ctypes.CDLL | None = None):
        self.kind, self.width, self.stride = kind, features_per_frame(kind, num_mfcc), check_stride(stride)
        self._lib = lib or library()
        self._state, self._workspace = _Stream(), _Workspace()
        _check(self._lib.kwsf_stream_init(ctypes.byref(self._state), stride), "kwsf_stream_init")

    def push(self, samples) -> np.ndarray:
        """Feed int16 samples; returns the frames [n, features] they complete."""
        samples = _as_int16(samples).ravel()
        capacity = num_frames(int(self._state.count) + len(samples), self.stride)
        out = np.zeros((max(capacity, 1), self.width), np.int16)
        produced = ctypes.c_int32()
        i16p = ctypes.POINTER(ctypes.c_int16)
        status = self._lib.kwsf_stream_push(
            ctypes.byref(self._state), samples.ctypes.data_as(i16p), len(samples), KINDS[self.kind], self.width,
            ctypes.byref(self._workspace), out.ctypes.data_as(i16p), capacity, ctypes.byref(produced),
        )
        _check(status, "kwsf_stream_push")
        return out[: produced.value]


if __name__ == "__main__":
    TABLES_FILE.write_text(generate_tables_source())
