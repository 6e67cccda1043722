"""Engine benchmarks: arena against TFLM's, Cortex-M4 code size, host instructions per inference.

    .venv/bin/python bench/engine_host.py            # every table
    .venv/bin/python bench/engine_host.py --no-callgrind

Arena: the engine's whole arena (state, tables, activations) against TFLM's on
a 32-bit Cortex-M4 (issue 5's figures), and beside the tflite-micro host
interpreter's recording (its activation "head" is the same on any target; its
total is larger here because host pointers are 8 bytes).
Code size: `arm-none-eabi-size` (text + data) of every runtime object for
Cortex-M4 (thumb, FPv4-SP), model data excluded, then of what one model's
firmware compiles (the core and only that model's kernels); libgcc/libm helpers
it calls (soft double arithmetic, frexp, round) are not objects of ours and are
not counted. Linked: a program running one model through the prepared runner
(the image of the build's choice under the code budget) or the interpreter,
linked with --gc-sections (firmware/code_budget.py's linked_flash): the model
data it carries and the code beside it.
Instructions: valgrind's callgrind counting only inside mf_invoke (one
inference, random input), the engine built at -O2 for the host (x86-64).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import mcuforge  # noqa: F401  (Keras 2 environment before TensorFlow)
from mcuforge.errors import MCUForgeError
from mcuforge.firmware.code_budget import CORTEX_M4, SECTIONS, budgeted_image, kernel_sources, linked_flash
from mcuforge.firmware.engine import RUNTIME_DIR, Engine, runtime_sources

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite-micro"
TFLM_ARENA_32BIT = {
    "hello_world/hello_world_int8.tflite": 676,
    "micro_speech/micro_speech_quantized.tflite": 6788,
    "person_detection/person_detect.tflite": 82292,
}
# One inference from a model file, for callgrind (a plain C driver: Python's ctypes
# entry into the library hides mf_invoke from callgrind's function names).
_CALLGRIND_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mf_engine.h"
static _Alignas(16) unsigned char model[1 << 20];
static _Alignas(16) unsigned char arena[1 << 20];
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb");
    size_t size = f ? fread(model, 1, sizeof model, f) : 0;
    mf_model *m; mf_tensor_info in; size_t i; unsigned x = 1;
    if (!f || mf_load(model, size, arena, sizeof arena, &m, NULL) != MF_OK || mf_input(m, 0, &in) != MF_OK) return 1;
    for (i = 0; i < in.bytes; ++i) { x = x * 1103515245u + 12345u; ((unsigned char *)in.data)[i] = (unsigned char)(x >> 16); }
    return mf_invoke(m) == MF_OK ? 0 : 1;
}
"""


def arena_table() -> list[tuple[str, int, int, int, int, float]]:
    """(model, ours, TFLM 32-bit, TFLM host head, TFLM host total, ours / TFLM 32-bit)."""
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.deploy.tflm import Emulator

    rows = []
    for name, tflm32 in TFLM_ARENA_32BIT.items():
        data = (MODELS / name).read_bytes()
        with Engine(data, source=name) as engine:
            ours = engine.arena_used
        host = Emulator(read_tflite(MODELS / name), data).arena_usage()
        rows.append((Path(name).stem, ours, tflm32, host.head, host.total, ours / tflm32))
    return rows


def code_size(optimization: str) -> dict[str, int]:
    """text + data bytes of each runtime object (every kernel) for Cortex-M4 at `optimization`."""
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("arm-none-eabi-size") is None:
        raise MCUForgeError("arm-none-eabi-gcc not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    with tempfile.TemporaryDirectory() as tmp:
        return {str(s.relative_to(RUNTIME_DIR)): _object_size(s, optimization, [], Path(tmp)) for s in runtime_sources()}


CORE_SOURCES = ("mf_engine.c", "mf_flatbuffer.c", "mf_fixedpoint.c", "mf_names.c", "kernels/common.c", "kernels/affine.c")
def model_code_size(name: str, optimization: str, strip_names: bool) -> int:
    """text + data of what a firmware running only this model links: the core and the model's kernels.

    The registry is built from a kernel list holding just the model's ops
    (-DMF_KERNEL_LIST), as TFLM builds an op resolver per application.
    """
    lines, files = kernel_sources((MODELS / name).read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        kernel_list = Path(tmp) / "model_kernels.h"
        kernel_list.write_text("\n".join(lines) + "\n")
        extra = [f"-DMF_KERNEL_LIST=\"{kernel_list}\"", *(["-DMF_STRIP_NAMES"] if strip_names else [])]
        sources = [RUNTIME_DIR / s for s in CORE_SOURCES] + [RUNTIME_DIR / "kernels" / "registry.c", *files]
        return sum(_object_size(source, optimization, extra, Path(tmp)) for source in sources)


def _object_size(source: Path, optimization: str, extra: list[str], tmp: Path) -> int:
    obj = tmp / (source.stem + ".o")
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", optimization, *CORTEX_M4, *SECTIONS, *extra]
    subprocess.run(["arm-none-eabi-gcc", *flags, f"-I{RUNTIME_DIR}", "-c", str(source), "-o", str(obj)], check=True)
    out = subprocess.run(["arm-none-eabi-size", str(obj)], check=True, capture_output=True, text=True).stdout
    text, data = (int(v) for v in out.splitlines()[1].split()[:2])
    return text + data


def instructions(name: str) -> int:
    """Instructions executed inside mf_invoke for one inference, counted by callgrind."""
    if shutil.which("valgrind") is None:
        raise MCUForgeError("valgrind not found: apt-get install valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        driver, binary, out = Path(tmp) / "driver.c", Path(tmp) / "driver", Path(tmp) / "callgrind.out"
        driver.write_text(_CALLGRIND_DRIVER)
        sources = [str(driver), *map(str, runtime_sources())]
        subprocess.run(["cc", "-std=c11", "-O2", "-g", f"-I{RUNTIME_DIR}", *sources, "-o", str(binary), "-lm"], check=True)
        cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=mf_invoke", f"--callgrind-out-file={out}", str(binary), str(MODELS / name)]
        subprocess.run(cmd, check=True, capture_output=True)
        return int(re.search(r"^totals:\s+(\d+)", out.read_text(), re.M)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts (slow under valgrind)")
    args = parser.parse_args()

    print("Arena (bytes): engine vs TFLM")
    print(f"{'model':<26}{'engine':>8}{'TFLM M4':>9}{'ratio':>7}{'TFLM host head':>16}{'TFLM host total':>17}")
    for model, ours, tflm32, head, total, ratio in arena_table():
        print(f"{model:<26}{ours:>8}{tflm32:>9}{ratio:>7.2f}{head:>16}{total:>17}")

    sizes = {level: code_size(level) for level in ("-Os", "-O2")}
    print("\nRuntime code for Cortex-M4 (text + data bytes, arm-none-eabi-size)")
    print(f"{'object':<34}{'-Os':>8}{'-O2':>8}")
    for obj in sizes["-Os"]:
        print(f"{obj:<34}{sizes['-Os'][obj]:>8}{sizes['-O2'][obj]:>8}")
    print(f"{'total (every kernel)':<34}{sum(sizes['-Os'].values()):>8}{sum(sizes['-O2'].values()):>8}")

    print("\nLinked for one model (core + that model's kernels), bytes")
    print(f"{'model':<26}{'-Os':>8}{'-O2':>8}{'-Os, names stripped':>22}")
    for name in TFLM_ARENA_32BIT:
        sizes_for = [model_code_size(name, "-Os", False), model_code_size(name, "-O2", False), model_code_size(name, "-Os", True)]
        print(f"{Path(name).stem:<26}{sizes_for[0]:>8}{sizes_for[1]:>8}{sizes_for[2]:>22}")

    print("\nLinked for Cortex-M4 at -Os: model data (prepared image or .tflite) and engine code for the model's kernels")
    print(f"{'model':<26}{'path':>12}{'kernels':>9}{'.tflite':>9}{'data':>9}{'ratio':>7}{'code':>8}{'double':>8}")
    for name in TFLM_ARENA_32BIT:
        model = (MODELS / name).read_bytes()
        for prepared, kernels in ((p, k) for p in (True, False) for k in ("portable", "dsp")):
            data, code, double = linked_flash(model, kernels, budgeted_image(model, kernels).image if prepared else None)
            path = "prepared" if prepared else "interpreter"
            print(f"{Path(name).stem:<26}{path:>12}{kernels:>9}{len(model):>9}{data:>9}{data / len(model):>7.2f}{code:>8}"
                  f"{'yes' if double else 'no':>8}")

    if not args.no_callgrind:
        print("\nHost instructions per inference (callgrind, inside mf_invoke, -O2)")
        for name in TFLM_ARENA_32BIT:
            print(f"{Path(name).stem:<26}{instructions(name):>14,}")


if __name__ == "__main__":
    main()
