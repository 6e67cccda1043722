"""Does the device's expf (newlib) give glibc's bits? The float32 SOFTMAX calls expf as TFLM's std::exp does.

    .venv/bin/python bench/float_expf.py [--samples 200000] [--target qemu-m4]

TFLM's host interpreter (the oracle) calls glibc's expf (its _runtime.so
imports expf@GLIBC_2.27), and so does the engine's host build; a firmware
links newlib's (the GNU Arm toolchain's libm: on Cortex-M4F the float-only
__ieee754_expf). Softmax evaluates expf on (x - max) * beta <= 0, so this
samples that domain evenly by bit pattern, from -0.0 down to -103.98 (below
it expf is 0 in both), computes glibc's values here, carries them in a
firmware image and counts in QEMU the samples where newlib's bits differ,
with the largest difference in ulps and the first few inputs that differ.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mcuforge.firmware import boards, codegen, qemu, toolchain
from mcuforge.hostbuild import STRICT_C_FLAGS

NEGATIVE_ZERO = 0x80000000
LOWEST = 0xC2CFF1B5  # -103.972... : expf is 0.0 below it (glibc and newlib)

HARNESS = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>

void mfb_write(const char *text, size_t length);
extern const uint32_t expected[];
extern const uint32_t sample_count, sample_stride;

static void put(const char *text) { mfb_write(text, strlen(text)); }

/* " label" then the value in hex (no printf: it would pull in the heap). */
static void put_hex(const char *label, uint32_t value)
{
    char digits[9];
    int i;
    for (i = 7; i >= 0; --i, value >>= 4) {
        digits[i] = "0123456789abcdef"[value & 15u];
    }
    digits[8] = '\0';
    put(label);
    put(digits);
}

int main(void)
{
    uint32_t differ = 0, worst = 0, shown = 0, k;
    for (k = 0; k < sample_count; ++k) {
        const uint32_t bits = 0x80000000u + k * sample_stride;
        float x, y;
        uint32_t got, gap;
        memcpy(&x, &bits, 4);
        y = expf(x);
        memcpy(&got, &y, 4);
        gap = got > expected[k] ? got - expected[k] : expected[k] - got; /* same sign: the bit gap is the ulp gap */
        if (gap != 0) {
            ++differ;
            worst = gap > worst ? gap : worst;
            if (shown++ < 5) {
                put_hex("differs x=", bits);
                put_hex(" newlib ", got);
                put_hex(" glibc ", expected[k]);
                put("\n");
            }
        }
    }
    put_hex("samples 0x", sample_count);
    put_hex(" differ 0x", differ);
    put_hex(" worst_ulps 0x", worst);
    put("\n");
    return 0;
}
"""


def glibc_expf(inputs: np.ndarray) -> np.ndarray:
    """glibc's expf (the libm TFLM's host interpreter links) of every input, as bits."""
    expf = ctypes.CDLL(ctypes.util.find_library("m")).expf
    expf.argtypes, expf.restype = [ctypes.c_float], ctypes.c_float
    return np.array([expf(float(x)) for x in inputs], np.float32).view(np.uint32)


def run(samples: int, target: str) -> str:
    stride = (LOWEST - NEGATIVE_ZERO) // (samples - 1)
    bits = (NEGATIVE_ZERO + stride * np.arange(samples, dtype=np.uint64)).astype(np.uint32)
    expected = glibc_expf(bits.view(np.float32))
    board = boards.load_board(target)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "memory.ld").write_text(codegen.render_memory_script(board))
        (work / "main.c").write_text(HARNESS)
        rows = ",\n".join(",".join(f"0x{v:08x}u" for v in expected[i:i + 8]) for i in range(0, samples, 8))
        (work / "expected.c").write_text(
            "#include <stdint.h>\n"
            f"const uint32_t sample_count = {samples}u, sample_stride = {stride}u;\n"
            f"const uint32_t expected[{samples}] = {{\n{rows}\n}};\n"
        )
        elf = work / "expf.elf"
        sources = [work / "main.c", work / "expected.c", *toolchain.board_sources(board)]
        subprocess.run(
            [toolchain.CROSS + "gcc", *STRICT_C_FLAGS, *board.cflags, "-O2", f"-I{boards.BOARDS_DIR / 'common'}",
             *map(str, sources), "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", f"-L{work}",
             f"-T{toolchain.LINKER_SCRIPT}", "-Wl,--gc-sections", "-o", str(elf), "-lm"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        result = subprocess.run(
            [qemu.QEMU, "-M", board.qemu_machine, "-nographic", "-monitor", "none", "-serial", "null",
             "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"error: the expf image failed on {target}: {result.stderr.strip()[-500:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--target", default="qemu-m4")
    args = parser.parse_args()
    print(run(args.samples, args.target), end="")


if __name__ == "__main__":
    main()
