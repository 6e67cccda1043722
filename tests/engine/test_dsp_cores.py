"""Every DSP kernel compiles for every DSP core at -Os, the level the code budget links at (firmware/code_budget.py).

The asm loops hold up to thirteen registers; on Armv8.1-M (Cortex-M55) GCC keeps LR
for low-overhead loops, and at -Os a loop around the depthwise taps then had no
register left ("impossible constraints"), which only a Cortex-M55 build with narrow
depthwise layers met. The firmware's own builds (-O2) are covered by the QEMU tests.
"""

import subprocess

import pytest

from mcuforge.firmware.boards import load_board
from mcuforge.firmware.engine import KERNELS_DIR, RUNTIME_DIR


@pytest.mark.parametrize("board", ["qemu-m4", "qemu-m7", "qemu-m33", "qemu-m55"])
def test_every_dsp_kernel_compiles_at_os(board, tmp_path):
    sources = sorted(str(path) for path in (KERNELS_DIR / "dsp").glob("*.c"))
    result = subprocess.run(
        ["arm-none-eabi-gcc", "-std=c99", "-Os", *load_board(board).cflags, f"-I{RUNTIME_DIR}", f"-I{KERNELS_DIR}", "-c", *sources],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list(tmp_path.glob("*.o"))) == len(sources)
