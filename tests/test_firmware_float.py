"""float32 models on the device: magic_wand on qemu-m4 (Cortex-M4F, hard-float ABI, single-precision FPU)
gives TFLM's output bits, which needs the engine built without fused multiply-add.

Measured when this test was written: with -ffp-contract=fast instead of off,
GCC fuses the kernels' a * b + c into VFMA and magic_wand's outputs move by up
to 37 ulps, so this run is itself the case where FMA would change the result;
the disassembly check below says why it passes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from mcuforge.firmware import build, qemu, toolchain

MAGIC_WAND = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite-micro" / "magic_wand"
FUSED = re.compile(r"\bv(fma|fms|fnma|fnms)\.f32\b")


def _tflm(model: bytes, x: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model)
    interpreter.set_input(x, 0)
    interpreter.invoke()
    return interpreter.get_output(0)


def _functions_with_fused_ops(elf: Path) -> set[str]:
    listing = subprocess.run([toolchain.CROSS + "objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    found, function = set(), ""
    for line in listing.splitlines():
        if m := re.match(r"^[0-9a-f]+ <(\w+)>:$", line):
            function = m[1]
        elif FUSED.search(line):
            found.add(function)
    return found


def test_magic_wand_on_qemu_m4_gives_tflm_bits_without_fused_multiply_add(tmp_path):
    model_path = MAGIC_WAND / "magic_wand.tflite"
    strokes = np.stack([np.load(p).astype(np.float32).reshape(128, 3, 1) for p in sorted(MAGIC_WAND.glob("*.npy"))])
    image = build.build_image(model_path, "qemu-m4", out_dir=tmp_path, inputs=strokes)
    assert "-mfloat-abi=hard" in image.board.cflags and "-mfpu=fpv4-sp-d16" in image.board.cflags
    result = qemu.run_qemu(image)
    assert len(result.outputs) == len(strokes)
    for stroke, outputs in zip(image.vectors, result.outputs):
        want = _tflm(model_path.read_bytes(), stroke.reshape(1, 128, 3, 1))
        assert outputs[0].dtype == np.float32
        np.testing.assert_array_equal(outputs[0].reshape(want.shape).view(np.uint32), want.view(np.uint32))
    # The engine's float code has no fused op; newlib's expf (prebuilt, its own rounding) is the only one that does.
    assert _functions_with_fused_ops(image.elf) <= {"__ieee754_expf"}
