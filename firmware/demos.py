"""On-device inference demos, run in QEMU: each is a small C application in firmware/demos (or the standard firmware app).

- vibration: a recording with an injected fault streams through the device,
  which computes the data set's integer features itself (vib_features.c, the
  port of mcuforge.train.datasets.vibration.window_features), scores each
  window with the autoencoder and raises an alarm above a threshold calibrated
  on normal data;
- digits and gestures: test-split samples classified by the standard firmware
  application (firmware/app), summarized as a confusion matrix;
- kws: raw 16 kHz audio in the image, features on the device by the firmware's
  feature extractor, classification over a sliding window, a timed transcript.

Each run returns a typed result parsed from the device's console lines
(firmware/console.py, the protocol every firmware application speaks).
"""

from __future__ import annotations

import ctypes
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from mcuforge.deploy.carray import array_definition
from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.deploy.tflm import Emulator, quantize
from mcuforge import features
from mcuforge.errors import MCUForgeError
from mcuforge.firmware import codegen, toolchain
from mcuforge.firmware.boards import load_board
from mcuforge.firmware.build import build_image
from mcuforge.firmware.engine import runtime_sources
from mcuforge.firmware.qemu import run_qemu
from mcuforge.firmware.toolchain import FirmwareImage
from mcuforge.hostbuild import FIRMWARE_DIR, SANITIZE_FLAGS, build_shared_library
from mcuforge.train import datasets
from mcuforge.train.datasets import ANOMALY, vibration
from mcuforge.train.datasets.keywords import SAMPLE_RATE, Speaker, sox_to_pcm, synthesize
from mcuforge.train.trainer import load_dataset

DEMOS_DIR = FIRMWARE_DIR / "demos"
FEATURES_DIR = FIRMWARE_DIR / "features"
DEMO_INCLUDES = (DEMOS_DIR, FEATURES_DIR, toolchain.APP_DIR, *toolchain.BOARD_INCLUDES)
VIB_SOURCES = (DEMOS_DIR / "vib_features.c",)
DEFAULT_TARGET = "qemu-m4"
DEFAULT_BUILD_ROOT = Path("build") / "demos"
# The threshold is this factor times the 99.5th percentile of the validation (normal) scores.
THRESHOLD_FACTOR = 1.5
THRESHOLD_PERCENTILE = 99.5


# --- building and running a demo image --------------------------------------


def build_demo(
    app: str, name: str, model_data: bytes, data_source: str, target: str, out_dir: Path, extra_sources: tuple[Path, ...] = ()
) -> FirmwareImage:
    """Link firmware/demos/<app>.c, its generated data (`data_source`), the engine and the board into <out_dir>/<name>.elf."""
    board = load_board(target)
    gcc = toolchain.gcc()
    out_dir.mkdir(parents=True, exist_ok=True)
    flags = toolchain.board_c_flags(board)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{name}.") as tmp:
        work = Path(tmp)
        (work / "memory.ld").write_text(codegen.render_memory_script(board))
        data_file = work / f"{app}_data.c"
        data_file.write_text(data_source)
        sources = [DEMOS_DIR / f"{app}.c", toolchain.CONSOLE_SOURCE, data_file, *extra_sources, *toolchain.board_sources(board), *runtime_sources(board.kernels)]
        objects = [toolchain.compiled(gcc, source, flags, list(DEMO_INCLUDES), work) for source in sources]
        elf, map_file = work / f"{name}.elf", work / f"{name}.map"
        toolchain.link(gcc, board, objects, elf, map_file, f"the {app} demo", len(model_data), 0)
        size = toolchain.size_report(board, map_file, len(model_data), 0)
        for ext in ("elf", "map"):
            os.replace(work / f"{name}.{ext}", out_dir / f"{name}.{ext}")
    paths = {ext: out_dir / f"{name}.{ext}" for ext in ("elf", "map")}
    # QEMU loads the ELF; a demo writes no .bin/.hex, so those fields name the ELF too.
    return FirmwareImage(board, name, bin=paths["elf"], hex=paths["elf"], uf2=None, size=size, vectors=np.empty(0), **paths)


def _model_and_arena(name: str, model_data: bytes, kernels: str) -> str:
    arena = codegen.engine_arena_bytes(model_data, kernels)
    return (
        f"{array_definition('demo', model_data, language='c99')}\n"
        f"const char mfdemo_model_name[] = {codegen.c_string(name)};\n"
        f"unsigned char mfdemo_arena[{arena}] __attribute__((aligned(16)));\n"
        f"const unsigned int mfdemo_arena_bytes = {arena};\n"
    )


# --- vibration: features on the device, anomaly score, alarm ----------------


def vibration_tables(segment: int) -> dict[str, np.ndarray]:
    """The C tables, from the data set's own functions: Hann, and cos/sin of 2*pi*m/N for m < N.

    The data set's DFT tables hold cos(2*pi*n*k/N) at [n, k]; their column k=1
    lists every value, and [n, k] is entry n*k mod N (a test checks it).
    """
    cos, sin = vibration.dft_tables_q15(segment)
    return {"hann": vibration.hann_q15(segment), "cos": cos[:, 1], "sin": sin[:, 1]}


class _VibConfig(ctypes.Structure):
    _fields_ = [
        ("segment", ctypes.c_int32),
        ("segments_per_window", ctypes.c_int32),
        ("bands", ctypes.c_int32),
        ("hann_q15", ctypes.POINTER(ctypes.c_int16)),
        ("cos_q15", ctypes.POINTER(ctypes.c_int16)),
        ("sin_q15", ctypes.POINTER(ctypes.c_int16)),
    ]


@lru_cache(maxsize=None)
def vib_library(sanitize: bool = False) -> ctypes.CDLL:
    """vib_features.c compiled for the host (optionally with ASan/UBSan)."""
    flags = ("-O1", "-g", *SANITIZE_FLAGS) if sanitize else ("-O2",)
    lib = ctypes.CDLL(str(build_shared_library("vib_features" + ("_asan" if sanitize else ""), list(VIB_SOURCES), [DEMOS_DIR], flags)))
    lib.vibf_window.argtypes = [ctypes.POINTER(ctypes.c_int16), ctypes.POINTER(_VibConfig), ctypes.POINTER(_VibWorkspace), ctypes.POINTER(ctypes.c_int32)]
    lib.vibf_window.restype = ctypes.c_int
    lib.vibf_log2_q8.argtypes = [ctypes.c_int64]
    lib.vibf_log2_q8.restype = ctypes.c_int32
    return lib


def _vib_constants() -> dict[str, int]:
    """The VIBF_* #defines of vib_features.h, the one definition of the workspace's sizes."""
    text = (DEMOS_DIR / "vib_features.h").read_text()
    return {name: int(value) for name, value in re.findall(r"#define VIBF_(\w+) (\d+)\n", text)}


VIB_CONSTANTS = _vib_constants()


class _VibWorkspace(ctypes.Structure):
    _fields_ = [
        ("windowed", ctypes.c_int64 * VIB_CONSTANTS["MAX_SEGMENT"]),
        ("power", ctypes.c_int64 * (VIB_CONSTANTS["AXES"] * VIB_CONSTANTS["MAX_SEGMENT"] // 2)),
    ]


def host_vibration_features(counts: np.ndarray, options, lib: ctypes.CDLL | None = None) -> np.ndarray:
    """vib_features.c compiled for the host: int32 features [windows, 2 * bands] of int16 counts [windows, window, 2]."""
    counts = np.ascontiguousarray(counts, dtype=np.int16)
    tables = {k: np.ascontiguousarray(v, dtype=np.int16) for k, v in vibration_tables(options.segment).items()}
    i16p = ctypes.POINTER(ctypes.c_int16)
    config = _VibConfig(options.segment, options.segments_per_window, options.bands, *(tables[k].ctypes.data_as(i16p) for k in ("hann", "cos", "sin")))
    workspace = _VibWorkspace()
    out = np.zeros((len(counts), 2 * options.bands), np.int32)
    lib = lib or vib_library()
    for i, window in enumerate(counts):
        status = lib.vibf_window(window.ctypes.data_as(i16p), ctypes.byref(config), ctypes.byref(workspace), out[i].ctypes.data_as(ctypes.POINTER(ctypes.c_int32)))
        if status != 0:
            raise MCUForgeError(f"vibf_window failed with status {status}")
    return out


def integer_vibration_features(features: np.ndarray) -> np.ndarray:
    """The data set's float features as the integers the device computes (log2_q8 values, exact in float32)."""
    return np.round(np.asarray(features, np.float64) * vibration.FEATURE_DIVISOR).astype(np.int64)


def spec_options(spec, dataset: str):
    """The spec's data options, parsed, after checking the spec is for `dataset`."""
    if spec.data.dataset != dataset:
        raise MCUForgeError(f"--spec {spec.name}: expected a spec of the {dataset} data set. Received one of {spec.data.dataset!r}")
    return datasets.parse_options(dataset, spec.data.options)


def vibration_scores(model_data: bytes, features: np.ndarray) -> np.ndarray:
    """Anomaly scores of integer features [n, f] by the TFLM host interpreter, computed as the device does.

    The device quantizes feature / vibration.FEATURE_DIVISOR and sums squared errors in
    double precision, element by element; this repeats that order exactly.
    """
    model = parse_tflite(model_data, "the vibration model")
    emulator = Emulator(model, model_data)
    tensor_in, tensor_out = emulator.inputs[0], emulator.outputs[0]
    out_q = tensor_out.quantization
    scores = np.empty(len(features))
    for row, feature in enumerate(np.asarray(features, np.int64)):
        x = feature / vibration.FEATURE_DIVISOR
        output = emulator.invoke(quantize(x, tensor_in).reshape(tensor_in.shape))[0].reshape(-1)
        total = 0.0
        for value, target in zip(output.tolist(), x.tolist()):
            error = float(np.float32(out_q.scale)) * (value - out_q.zero_point) - target
            total += error * error
        scores[row] = total / len(x)
    return scores


def calibrate_threshold(model_data: bytes, normal_features: np.ndarray) -> float:
    """THRESHOLD_FACTOR x the THRESHOLD_PERCENTILE-th percentile of the scores of normal (validation) windows."""
    return THRESHOLD_FACTOR * float(np.percentile(vibration_scores(model_data, normal_features), THRESHOLD_PERCENTILE))


@dataclass
class VibrationDemo:
    """What the device reported for a vibration stream, beside what the stream's generator knows."""

    features: np.ndarray  # int16 [windows, 2 * bands], computed on the device
    scores: np.ndarray  # float64 [windows]
    alarms: list[int]  # windows whose score crossed the threshold
    start_s: np.ndarray  # window start times
    cycles: list[int]  # per window: features + inference + score
    threshold: float
    faulty: np.ndarray  # bool [windows]: the window holds faulty samples (ground truth)
    fault: str
    fault_onset_s: float
    text: str = ""

    @property
    def first_alarm(self) -> int | None:
        return self.alarms[0] if self.alarms else None

    @property
    def onset_window(self) -> int:
        return int(np.argmax(self.faulty))

    def transcript(self) -> str:
        lines = []
        for i, (start, score) in enumerate(zip(self.start_s, self.scores)):
            flag = "  ALARM" if i in self.alarms else ""
            lines.append(f"[{start:7.2f} s] window {i:3d} score {score:.6f}{flag}")
        lines.append(
            f"{self.fault} injected at {self.fault_onset_s:.2f} s (window {self.onset_window}); "
            f"threshold {self.threshold:.6f}; first alarm: "
            + (f"window {self.first_alarm} ({self.start_s[self.first_alarm]:.2f} s)" if self.alarms else "none")
        )
        return "\n".join(lines)


def render_vibration_data(name: str, model_data: bytes, counts: np.ndarray, options, threshold: float, kernels: str) -> str:
    """anomaly_data.c: the model, the recording and the feature configuration (see anomaly_data.h)."""
    tables = vibration_tables(options.segment)
    windows = len(counts) // options.window
    return (
        "/* Generated by mcuforge.firmware.demos: the vibration demo's model, recording and tables. */\n"
        '#include "anomaly_data.h"\n\n'
        f"{_model_and_arena(name, model_data, kernels)}"
        + codegen.c_int_array("int16_t", "mfdemo_vib_hann", tables["hann"])
        + codegen.c_int_array("int16_t", "mfdemo_vib_cos", tables["cos"])
        + codegen.c_int_array("int16_t", "mfdemo_vib_sin", tables["sin"])
        + codegen.c_int_array("int16_t", "mfdemo_vib_samples", counts[: windows * options.window].reshape(-1))
        + f"const uint32_t mfdemo_vib_windows = {windows};\n"
        f"const uint32_t mfdemo_vib_sample_rate_hz = {options.sample_rate_hz};\n"
        f"const vibf_config_t mfdemo_vib_config = {{{options.segment}, {options.segments_per_window}, {options.bands}, "
        "mfdemo_vib_hann, mfdemo_vib_cos, mfdemo_vib_sin};\n"
        f"const double mfdemo_vib_threshold = {threshold!r};\n"
        f"const double mfdemo_vib_feature_divisor = {vibration.FEATURE_DIVISOR!r};\n"
    )


def run_vibration(
    model_path: Path | str,
    options,
    threshold: float,
    seed: int = 0,
    seconds: float = 20.0,
    fault: str = "bearing_outer",
    fault_at_s: float | None = None,
    target: str = DEFAULT_TARGET,
    out_dir: Path | str = DEFAULT_BUILD_ROOT,
    timeout: float = 300.0,
) -> VibrationDemo:
    """Stream a recording with `fault` injected at `fault_at_s` (default halfway) through the device."""
    model_data = read_model(model_path)
    recording = vibration.stream(options, seed, seconds, fault, seconds / 2 if fault_at_s is None else fault_at_s)
    board = load_board(target)
    source = render_vibration_data("vibration", model_data, recording.counts, options, threshold, board.kernels)
    image = build_demo("anomaly_stream", "vibration_demo", model_data, source, target, Path(out_dir), VIB_SOURCES)
    result = run_qemu(image, timeout)
    windows = [line.fields for line in result.lines_of("window")]
    features = np.stack([np.frombuffer(bytes.fromhex(w["features"]), "<i2") for w in windows]) if windows else np.empty((0, 0), np.int16)
    return VibrationDemo(
        features=features,
        scores=np.array([np.frombuffer(bytes.fromhex(w["score"]), ">f8")[0] for w in windows]),
        alarms=[int(line.words[0]) for line in result.lines_of("alarm")],
        start_s=np.array([int(w["start_ms"]) / 1000 for w in windows]),
        cycles=[int(w["cycles"]) for w in windows],
        threshold=threshold,
        faulty=recording.faulty,
        fault=fault,
        fault_onset_s=recording.fault_onset_s,
        text=result.text,
    )


def read_model(model_path: Path | str) -> bytes:
    """The model's bytes; a missing file says how to make one."""
    path = Path(model_path)
    if not path.is_file():
        raise MCUForgeError(f"model {path} not found: run `mcuforge run SPEC` (or train + convert) first; it writes build/<name>/deploy/model_int8.tflite")
    return path.read_bytes()


# --- digits and gestures: test-split samples and a confusion matrix ---------


@dataclass
class ClassifierDemo:
    """Device predictions on test-split samples."""

    predictions: np.ndarray  # int64 [n]
    labels: np.ndarray  # int64 [n]: the true classes
    class_names: list[str]
    outputs: list[np.ndarray] = field(default_factory=list)  # the raw output per sample
    cycles: list[int] = field(default_factory=list)

    @property
    def confusion(self) -> np.ndarray:
        """[true, predicted] counts."""
        matrix = np.zeros((len(self.class_names), len(self.class_names)), np.int64)
        np.add.at(matrix, (self.labels, self.predictions), 1)
        return matrix

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))

    def format(self) -> str:
        names = [n[:6] for n in self.class_names]
        width = max(6, *(len(n) for n in names))
        header = " " * (width + 2) + " ".join(f"{n:>{width}}" for n in names)
        rows = [f"{names[i]:>{width}}  " + " ".join(f"{v:>{width}d}" for v in row) for i, row in enumerate(self.confusion)]
        cycles = f"; {int(np.median(self.cycles)):,} cycles per inference (median)" if self.cycles else ""
        return "\n".join(["rows: true class, columns: device prediction", header, *rows, f"accuracy {self.accuracy:.3f} on {len(self.labels)} test samples{cycles}"])


def run_classifier(
    model_path: Path | str,
    x: np.ndarray,
    y: np.ndarray,
    class_names: list[str],
    target: str = DEFAULT_TARGET,
    out_dir: Path | str = DEFAULT_BUILD_ROOT,
    timeout: float = 300.0,
) -> ClassifierDemo:
    """Classify the samples `x` on the device with the standard firmware application (firmware/app)."""
    read_model(model_path)
    labels_file = Path(out_dir) / "labels.txt"
    labels_file.parent.mkdir(parents=True, exist_ok=True)
    labels_file.write_text("".join(f"{name}\n" for name in class_names))
    image = build_image(model_path, target, out_dir=out_dir, inputs=np.asarray(x), labels_path=labels_file)
    result = run_qemu(image, timeout=timeout)
    if len(result.top) != len(x):
        raise MCUForgeError(f"the device reported {len(result.top)} predictions for {len(x)} samples")
    return ClassifierDemo(
        predictions=np.array([top[0][0] for top in result.top], np.int64),
        labels=np.asarray(y, np.int64),
        class_names=list(class_names),
        outputs=[outputs[0] for outputs in result.outputs],
        cycles=list(result.cycles),
    )



def run_test_split(spec, model_path: Path | str, count: int | None = None, target: str = DEFAULT_TARGET, out_dir: Path | str = DEFAULT_BUILD_ROOT) -> ClassifierDemo:
    """Classify the first `count` (default all) test-split samples of the spec's data set on the device."""
    read_model(model_path)
    dataset = load_dataset(spec)
    if dataset.task == ANOMALY:
        raise MCUForgeError(f"{spec.name} is an anomaly-detection spec: use `mcuforge demo vibration` for it")
    if count is not None and count < 1:
        raise MCUForgeError(f"count: expected a positive number of test samples. Received: {count}")
    chosen = slice(0, count)
    return run_classifier(model_path, dataset.x_test[chosen], dataset.y_test[chosen], dataset.class_names, target, Path(out_dir) / spec.name)


# --- keyword spotting: audio in, features and classification on the device ---

KWS_HOP_FRAMES = 5  # classify every 5 frames (100 ms at the default 20 ms stride)
KWS_AVERAGE = 2  # over the last 2 outputs (200 ms)
KWS_THRESHOLD = 0.4  # averaged probability a keyword must reach (0.35..0.5 gave the same transcripts on the test speakers)
KWS_SUPPRESS_MS = 1600  # a word is reported once (it stays in the 1 s window for a second)
KWS_WORD_GAP_MS = 1000  # silence between the words of --say


@dataclass
class KwsDemo:
    """What the device heard: the words with the time they were recognized, and everything behind them."""

    words: list[tuple[str, float, float]]  # (label, seconds at the end of the window, averaged probability)
    frames: np.ndarray  # int16 [frames, features] when printed, else empty
    inferences: list[tuple[int, float, np.ndarray]]  # (last frame, seconds, int8 output)
    cycles: list[int]
    audio_seconds: float

    @property
    def sequence(self) -> list[str]:
        return [word for word, _, _ in self.words]

    def transcript(self) -> str:
        lines = [f"[{t:6.2f} s] {word} ({score:.2f})" for word, t, score in self.words] or ["(no keyword heard)"]
        cycles = f", {int(np.median(self.cycles)):,} cycles per inference" if self.cycles else ""
        lines.append(f"{self.audio_seconds:.2f} s of audio, {len(self.inferences)} inferences{cycles}")
        return "\n".join(lines)


def say(text: str, voice: str = "en-us", pitch: int = 50, speed: int = 150, gap_ms: int = KWS_WORD_GAP_MS) -> np.ndarray:
    """`text` spoken by espeak-ng word by word, `gap_ms` of silence between words and half a second around, as 16 kHz int16 PCM.

    Each word is synthesized alone so that the gap does not shrink with the
    speaking rate (espeak-ng's own -g gap does).
    """
    words = text.split()
    if not words:
        raise MCUForgeError("--say: expected some words to speak. Received an empty text")
    with tempfile.TemporaryDirectory() as tmp:
        spoken = synthesize(Speaker("espeak-ng", voice, pitch, speed), list(dict.fromkeys(words)), Path(tmp), seed=0)
    pad, gap = np.zeros(SAMPLE_RATE // 2, np.int16), np.zeros(SAMPLE_RATE * gap_ms // 1000, np.int16)
    parts = [pad]
    for index, word in enumerate(words):
        parts += [gap] if index else []
        parts.append(spoken[word])
    return np.concatenate([*parts, pad])


def read_audio(path: Path | str) -> np.ndarray:
    """Any WAV file as 16 kHz mono int16 PCM (through sox)."""
    path = Path(path)
    if not path.is_file():
        raise MCUForgeError(f"--wav: {path} not found: pass a WAV file")
    return sox_to_pcm(path, ["channels", "1"])


def _output_threshold_q(model_data: bytes, probability: float) -> int:
    q = parse_tflite(model_data, "the keyword model").main.output_tensors[0].quantization
    return int(np.ceil(probability / q.scale + q.zero_point))


def render_kws_data(
    name: str, model_data: bytes, audio: np.ndarray, class_names: list[str], kind: str, num_features: int, frames: int,
    print_frames: bool, kernels: str, normalization: str, stride: int,
) -> str:
    """kws_stream_data.c: the model, the audio and the streaming settings (see kws_data.h); an unknown normalization
    or a stride the extractor refuses is an MCUForgeError here, before anything is built."""

    labels = ", ".join(codegen.c_string(codegen.console_word(label)) for label in class_names)
    return (
        "/* Generated by mcuforge.firmware.demos: the keyword demo's model, audio and settings. */\n"
        '#include "kws_data.h"\n\n'
        f"{_model_and_arena(name, model_data, kernels)}"
        + codegen.c_int_array("int16_t", "mfdemo_kws_audio", audio if len(audio) else [0])
        + f"const uint32_t mfdemo_kws_audio_samples = {len(audio)};\n"
        f"const kwsf_kind_t mfdemo_kws_kind = {'KWSF_MFCC' if features.KINDS[kind] else 'KWSF_LOGMEL'};\n"
        f"const int32_t mfdemo_kws_features = {num_features};\n"
        f"const int32_t mfdemo_kws_stride = {features.check_stride(stride)};\n"
        f"const int32_t mfdemo_kws_frames = {frames};\n"
        f"const int32_t mfdemo_kws_hop_frames = {KWS_HOP_FRAMES};\n"
        f"const int32_t mfdemo_kws_average = {KWS_AVERAGE};\n"
        f"const int32_t mfdemo_kws_threshold_q = {_output_threshold_q(model_data, KWS_THRESHOLD)};\n"
        f"const int32_t mfdemo_kws_suppress_ms = {KWS_SUPPRESS_MS};\n"
        f"const int32_t mfdemo_kws_first_keyword = 2;\n"
        f"const int32_t mfdemo_kws_print_frames = {int(print_frames)};\n"
        f"const kwsf_norm_t mfdemo_kws_normalization = (kwsf_norm_t){features.normalization_code(normalization)};\n"
        f"const uint32_t mfdemo_kws_label_count = {len(class_names)};\n"
        f"const char *const mfdemo_kws_labels[] = {{{labels}}};\n"
    )


def run_kws(
    model_path: Path | str,
    audio: np.ndarray,
    class_names: list[str],
    kind: str = "mfcc",
    num_mfcc: int = 10,
    normalization: str = "none",
    stride: int = features.STRIDE,
    print_frames: bool = False,
    target: str = DEFAULT_TARGET,
    out_dir: Path | str = DEFAULT_BUILD_ROOT,
    timeout: float = 600.0,
) -> KwsDemo:
    """Stream 16 kHz int16 `audio` through the device: features, sliding-window classification, transcript.

    `normalization` is the keywords data option feature_normalization the model was trained with, `stride` its frame
    stride in samples (features.stride_samples of frame_stride_ms); the model's input says how many frames it takes.
    """

    model_data = read_model(model_path)
    audio = np.asarray(audio)
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise MCUForgeError(f"audio: expected 16 kHz mono int16 samples. Received {audio.dtype} of shape {list(audio.shape)}")
    width = features.features_per_frame(kind, num_mfcc)
    graph = parse_tflite(model_data, str(model_path)).main
    input_size = int(np.prod(graph.input_tensors[0].shape))
    classes = int(np.prod(graph.output_tensors[0].shape))
    if classes != len(class_names):
        raise MCUForgeError(f"{model_path} has {classes} classes, the spec names {len(class_names)} ({', '.join(class_names)}): pass the spec the model was trained with")
    if input_size % width:
        raise MCUForgeError(f"{model_path} takes {input_size} values, not whole frames of {width} {kind} features: pass the features the model was trained on")
    if len(class_names) < 3:
        raise MCUForgeError(f"class names: expected _silence_, _unknown_ and at least one keyword. Received: {class_names}")
    board = load_board(target)
    source = render_kws_data("keywords", model_data, audio, class_names, kind, width, input_size // width, print_frames, board.kernels,
                             normalization, stride)
    image = build_demo("kws_stream", "kws_demo", model_data, source, target, Path(out_dir), tuple(features.SOURCES))
    result = run_qemu(image, timeout)
    out_q = graph.output_tensors[0].quantization
    frames = [np.frombuffer(bytes.fromhex(line.words[1]), "<i2") for line in result.lines_of("frame")]
    inferences = []
    for line in result.lines_of("infer"):
        fields = line.fields
        inferences.append((int(line.words[0]), int(fields["t_ms"]) / 1000, np.frombuffer(bytes.fromhex(fields["output"]), np.int8), int(fields["cycles"])))
    heard = []
    for line in result.lines_of("word"):
        fields = line.fields
        heard.append((line.words[0], int(fields["t_ms"]) / 1000, float(out_q.scale * (int(fields["score"]) - out_q.zero_point))))
    return KwsDemo(
        words=heard,
        frames=np.stack(frames) if frames else np.empty((0, width), np.int16),
        inferences=[(last, t, output) for last, t, output, _ in inferences],
        cycles=[c for *_, c in inferences],
        audio_seconds=len(audio) / features.SAMPLE_RATE,
    )
