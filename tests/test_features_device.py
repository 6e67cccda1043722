"""The feature extractor compiled for Cortex-M and run in QEMU gives the host's features bit for bit.

The audio is TFLM's real `yes` recording from ../shared. The harness prints
every frame of the clip API (also mean- and variance-normalized) and of the streaming API over semihosting, at the
default frame stride and at a 40 ms one (above the window: samples between frames skipped); the test compares them
with the ctypes build that training uses.
"""

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from mcuforge import features
from mcuforge.firmware import boards, codegen, qemu, toolchain
from mcuforge.hostbuild import STRICT_C_FLAGS

YES_WAV = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite-micro" / "micro_speech" / "testdata" / "yes_1000ms.wav"
STREAM_CHUNK = 1000  # samples per kwsf_stream_push, not a multiple of the stride on purpose
WIDE_STRIDE = 640  # 40 ms

HARNESS = r"""
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "kws_features.h"

extern const int16_t kws_audio[];
extern const int32_t kws_audio_length;

static kwsf_workspace_t workspace;
static kwsf_stream_t stream;
static int16_t frames_out[49 * KWSF_MEL_BINS];

static void put_text(const char *text)
{
    size_t length = 0;
    while (text[length] != '\0') {
        length++;
    }
    mfb_write(text, length);
}

static void put_int(int32_t value)
{
    char digits[12];
    int position = 11;
    uint32_t magnitude = value < 0 ? (uint32_t)(-(int64_t)value) : (uint32_t)value;
    digits[position] = '\0';
    do {
        digits[--position] = (char)('0' + magnitude % 10u);
        magnitude /= 10u;
    } while (magnitude != 0u);
    if (value < 0) {
        digits[--position] = '-';
    }
    put_text(&digits[position]);
    put_text(" ");
}

static void put_frames(const char *tag, const int16_t *values, int32_t frames, int32_t width)
{
    int32_t f;
    int32_t i;
    for (f = 0; f < frames; f++) {
        put_text(tag);
        put_text(" ");
        for (i = 0; i < width; i++) {
            put_int(values[f * width + i]);
        }
        put_text("\n");
    }
}

/* The clip pushed CHUNK samples at a time through a stream at `stride`; nonzero on a refusal. */
static int stream_frames(const char *tag, int32_t stride)
{
    int32_t frames = 0;
    int32_t offset;
    if (kwsf_stream_init(&stream, stride) != KWSF_OK) {
        return 1;
    }
    for (offset = 0; offset < kws_audio_length; offset += CHUNK) {
        const int32_t n = kws_audio_length - offset < CHUNK ? kws_audio_length - offset : CHUNK;
        if (kwsf_stream_push(&stream, &kws_audio[offset], n, KWSF_MFCC, 10, &workspace, frames_out, 49, &frames) != KWSF_OK) {
            return 1;
        }
        put_frames(tag, frames_out, frames, 10);
    }
    return 0;
}

int main(void)
{
    int32_t frames = 0;
    kwsf_status_t status;

    status = kwsf_clip(kws_audio, kws_audio_length, KWSF_STRIDE, KWSF_MFCC, 10, &workspace, frames_out, 49, &frames);
    if (status != KWSF_OK) {
        return 10 + (int)status;
    }
    put_frames("mfcc", frames_out, frames, 10);
    status = kwsf_normalize(frames_out, frames, 10, KWSF_NORM_MEAN_VARIANCE);
    if (status != KWSF_OK) {
        return 50 + (int)status;
    }
    put_frames("normalized", frames_out, frames, 10);
    status = kwsf_clip(kws_audio, kws_audio_length, KWSF_STRIDE, KWSF_LOGMEL, KWSF_MEL_BINS, &workspace, frames_out, 49, &frames);
    if (status != KWSF_OK) {
        return 20 + (int)status;
    }
    put_frames("logmel", frames_out, frames, KWSF_MEL_BINS);
    status = kwsf_clip(kws_audio, kws_audio_length, WIDE_STRIDE, KWSF_MFCC, 10, &workspace, frames_out, 49, &frames);
    if (status != KWSF_OK) {
        return 60 + (int)status;
    }
    put_frames("wide", frames_out, frames, 10);
    if (stream_frames("stream", KWSF_STRIDE) != 0 || stream_frames("wide_stream", WIDE_STRIDE) != 0) {
        return 30;
    }
    put_text("done\n");
    return 0;
}
"""


def _audio() -> np.ndarray:
    with wave.open(str(YES_WAV)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.int16)


def _audio_source(audio: np.ndarray) -> str:
    values = ",".join(str(int(v)) for v in audio)
    return (
        "#include <stdint.h>\n"
        f"const int32_t kws_audio_length = {len(audio)};\n"
        f"const int16_t kws_audio[{len(audio)}] = {{{values}}};\n"
    )


def _run_on(board_name: str, audio: np.ndarray, work: Path) -> dict[str, np.ndarray]:
    board = boards.load_board(board_name)
    (work / "memory.ld").write_text(codegen.render_memory_script(board))
    (work / "main.c").write_text(HARNESS.replace("CHUNK", str(STREAM_CHUNK)).replace("WIDE_STRIDE", str(WIDE_STRIDE)))
    (work / "audio.c").write_text(_audio_source(audio))
    sources = [
        work / "main.c",
        work / "audio.c",
        *features.SOURCES,
        boards.BOARDS_DIR / "common" / "startup.c",
        *(boards.BOARDS_DIR / s for s in board.sources),
    ]
    elf = work / "features.elf"
    subprocess.run(
        [toolchain.CROSS + "gcc", *STRICT_C_FLAGS, *board.cflags, "-O2", "-ffreestanding",
         f"-I{features.SOURCE_DIR}", f"-I{boards.BOARDS_DIR / 'common'}", *map(str, sources),
         "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", f"-L{work}", f"-T{toolchain.LINKER_SCRIPT}",
         "-Wl,--gc-sections", "-o", str(elf)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    run = subprocess.run(
        [qemu.QEMU, "-M", board.qemu_machine, "-nographic", "-monitor", "none", "-serial", "null",
         "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, (run.returncode, run.stdout[-500:], run.stderr[-500:])
    lines = run.stdout.splitlines()
    assert lines[-1] == "done"
    rows: dict[str, list[list[int]]] = {}
    for line in lines[:-1]:
        tag, *values = line.split()
        rows.setdefault(tag, []).append([int(v) for v in values])
    return {tag: np.array(values, np.int64) for tag, values in rows.items()}


@pytest.mark.parametrize("board_name", ["qemu-m4", "qemu-m3"])  # with an FPU, and without FPU or DSP extension
def test_device_features_bit_identical_to_host(board_name, tmp_path):
    audio = _audio()
    device = _run_on(board_name, audio, tmp_path)
    np.testing.assert_array_equal(device["mfcc"], features.extract(audio, "mfcc", 10).astype(np.int64))
    normalized = features.normalize(features.extract(audio, "mfcc", 10), "mean_variance")
    np.testing.assert_array_equal(device["normalized"], normalized.astype(np.int64))
    np.testing.assert_array_equal(device["logmel"], features.extract(audio, "logmel").astype(np.int64))
    np.testing.assert_array_equal(device["stream"], features.extract(audio, "mfcc", 10).astype(np.int64))
    assert device["mfcc"].shape == (49, 10)
    wide = features.extract(audio, "mfcc", 10, stride=WIDE_STRIDE).astype(np.int64)
    np.testing.assert_array_equal(device["wide"], wide)
    np.testing.assert_array_equal(device["wide_stream"], wide)
    assert wide.shape == (25, 10)  # 1 + (16000 - 480) // 640
