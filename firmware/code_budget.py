"""The engine code a firmware links for one model, measured, and the loop choice that keeps it within a code budget.

A prepared image names the eval loop of every op, and a firmware links only
those (firmware/prepared.py's kernel and eval lists). Where a model's narrow
3x3 depthwise layers take the NHWC loops and its wider ones the channel-major
loops, the firmware carries both families; sending the narrow ones
channel-major too drops the NHWC code for some instructions. No layer width
separates the models where that pays from those where it costs speed for
nothing (README, engine benchmarks), so the build decides from the real link:
the fastest choice whose runner code, linked at -Os for the board's core, fits
the budget (issue 14's 8 KB by default), else the fastest."""

from __future__ import annotations

import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mcuforge.firmware import codegen, toolchain
from mcuforge.firmware.engine import KERNELS_DIR, RUNTIME_DIR, runtime_sources, shadowed_kernel_source
from mcuforge.firmware.prepared import NARROW_DEPTHWISE_CHANNEL_MAJOR, PreparedImage, eval_list, image_source, kernel_list, prepared_image

DEFAULT_CODE_BUDGET = 8192  # issue 14: runner code for a model's kernels <= 8 KB at -Os on Cortex-M4
CORTEX_M4 = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
SECTIONS = ("-ffunction-sections", "-fdata-sections")
# Build choices (mf_kernel.h's MF_CHOICE_* bits), fastest first, each with what it means for the depthwise loops.
CHOICES = {0: "NHWC loops for narrow 3x3 depthwise", NARROW_DEPTHWISE_CHANNEL_MAJOR: "channel-major loops for narrow 3x3 depthwise"}
# Programs that run one model through each path, linked to measure what the device carries.
_MAINS = {
    True: r"""
#include "mf_prepared.h"
extern const uint32_t mf_model_image[];
extern const size_t mf_model_image_bytes;
static uint8_t arena[1 << 16] __attribute__((aligned(16)));
int main(void) {
    mf_prepared runner; mf_tensor_info in, out;
    if (mf_prepared_open(mf_model_image, mf_model_image_bytes, arena, sizeof arena, &runner) != MF_OK) return 1;
    if (mf_prepared_input(&runner, 0, &in) != MF_OK || mf_prepared_invoke(&runner) != MF_OK) return 2;
    return mf_prepared_output(&runner, 0, &out) == MF_OK ? 0 : 3;
}
""",
    False: r"""
#include "mf_engine.h"
extern const uint32_t mf_model_image[];
extern const size_t mf_model_image_bytes;
static uint8_t arena[1 << 16] __attribute__((aligned(16)));
int main(void) {
    mf_model *model; mf_tensor_info in, out;
    if (mf_load((const uint8_t *)mf_model_image, mf_model_image_bytes, arena, sizeof arena, &model, NULL) != MF_OK) return 1;
    if (mf_input(model, 0, &in) != MF_OK || mf_invoke(model) != MF_OK) return 2;
    return mf_output(model, 0, &out) == MF_OK ? 0 : 3;
}
""",
}


def kernel_sources(model: bytes) -> tuple[list[str], list[Path]]:
    """The registry lines (prepared.kernel_list: float32 ops' own kernels included) and kernel .c files `model` needs."""
    lines, files = kernel_list(model).splitlines(), set()
    for line in lines:
        prefix = line.split(", ")[-2]  # MF_KERNEL(key, prefix, flags)
        definition = re.compile(rf"^mf_status {prefix}_(eval|prepare)\(", re.M)  # affine evals: kernels/affine_eval.c
        files.update(p for p in (RUNTIME_DIR / "kernels").glob("*.c") if definition.search(p.read_text()))
    return lines, sorted(files)


class LinkedFlash(NamedTuple):
    """What a firmware running one model carries in flash, as linked."""

    model_bytes: int  # the prepared image, or the .tflite for the interpreter
    code_bytes: int  # the ELF's text + data less the model data array
    soft_double: bool  # whether soft-float double routines were linked


def linked_flash(model: bytes, kernels: str, image: PreparedImage | None, cpu_flags=CORTEX_M4) -> LinkedFlash:
    """The flash of a firmware running `model`, linked at -Os.

    image: the prepared image the runner runs (model data = the image); None:
    the interpreter and the .tflite (mf_load at boot). The engine with the
    model's kernels of set `kernels` is linked with --gc-sections for the core
    of `cpu_flags`.
    Objects come from the firmware's object cache (the lists are content-named
    headers), so measuring the same model again compiles only the image.
    """
    data = image.data if image is not None else model
    files = kernel_sources(model)[1]
    defines_eval = re.compile(r"^mf_status \w+_eval\(", re.M)
    needed = {f.name for f in files}
    sources = [s for s in runtime_sources(kernels)
               if s.name in needed or not defines_eval.search((RUNTIME_DIR / "kernels" / s.name if s.parent != RUNTIME_DIR else s).read_text())]
    flags = ["-std=c99", "-Os", *cpu_flags, *SECTIONS, f'-DMF_KERNEL_LIST="{codegen.model_kernel_list(model)}"']
    # As firmware/build.py: the runner table of the image's eval variants, given to the files that read it (the
    # same objects, and the others stay cached across the images of one model).
    evals = [f'-DMF_EVAL_LIST="{codegen.image_eval_list(image)}"'] if image is not None else []
    readers = _eval_list_readers(sources)
    gcc = toolchain.gcc()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "image.c").write_text(image_source(PreparedImage(data, 0)))
        (work / "main.c").write_text(_MAINS[image is not None])
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # each compile is its own process
            objects = list(pool.map(lambda source: toolchain.compiled(gcc, source, [*flags, *(evals if source in readers else [])],
                                                                      [RUNTIME_DIR], work),
                                    [*sources, work / "image.c", work / "main.c"]))
        elf = work / "runner.elf"
        link = ["-Wl,--gc-sections", "-specs=nano.specs", "-specs=nosys.specs", "-nostartfiles", "-Wl,-e,main"]
        toolchain.run([gcc, *cpu_flags, *map(str, objects), *link, "-o", str(elf), "-lm"], "linking the runner to measure its code")
        sizes = toolchain.run([toolchain.CROSS + "size", str(elf)], "measuring the runner's code").stdout
        text, data_bytes = (int(v) for v in sizes.splitlines()[1].split()[:2])
        symbols = toolchain.run([toolchain.CROSS + "nm", "-S", str(elf)], "listing the runner's symbols").stdout
        array = int(re.search(r"^\w+ (\w+) R mf_model_image$", symbols, re.M)[1], 16)
        return LinkedFlash(len(data), text + data_bytes - array, "__aeabi_d" in symbols)


def _eval_list_readers(sources: list[Path]) -> set[Path]:
    """The sources whose preprocessing reads MF_EVAL_LIST (a directive naming it, in the file or the portable file a
    kernel set's file includes); all of them if a runtime header has such a directive."""
    directive = re.compile(r"^\s*#.*\bMF_EVAL_LIST\b", re.M)
    if any(directive.search(h.read_text()) for h in RUNTIME_DIR.rglob("*.h")):
        return set(sources)
    return {s for s in sources if any(directive.search(f.read_text()) for f in _with_shadowed(s))}


def _with_shadowed(source: Path) -> list[Path]:
    """A source and, for a kernel set's file, the portable file it includes."""
    shadowed = shadowed_kernel_source(source) if source.parent.parent == KERNELS_DIR else None
    return [source, shadowed] if shadowed is not None and shadowed.is_file() else [source]


@dataclass(frozen=True)
class BudgetedImage:
    """The prepared image a firmware carries and the build choice behind it, as measured."""

    image: PreparedImage
    choices: int  # mf_kernel.h's MF_CHOICE_* bits the image was prepared with
    budget: int
    linked: dict[int, LinkedFlash]  # the link at -Os of each choice measured; empty when the choices give one image

    @property
    def code_bytes(self) -> dict[int, int]:
        """Runner code at -Os of each choice measured."""
        return {choices: linked.code_bytes for choices, linked in self.linked.items()}

    def describe(self) -> str:
        """One line for the build's report: the loops chosen and the measured code that decided it."""
        if not self.code_bytes:
            return "engine loops: the kernels' own (no build choice changes this model's image)"
        measured = "; ".join(f"{CHOICES[c]}: {b:,} B" for c, b in self.code_bytes.items())
        verdict = "within" if self.code_bytes[self.choices] <= self.budget else "none within, so the fastest; over"
        return f"engine loops: {CHOICES[self.choices]} ({measured}; runner code at -Os, {verdict} the {self.budget:,} B budget)"


_RUNNER_LINKS: dict[tuple, LinkedFlash] = {}  # runner_link's measurements in this process


def runner_link(model: bytes, kernels: str, image: PreparedImage, cpu_flags=CORTEX_M4) -> LinkedFlash:
    """linked_flash of a prepared image, linked once per process for each kernel list, eval list, kernel set and core:
    the code is that of the kernels and eval variants linked, not of the weights (an architecture search measures many
    candidates of few op shapes); only the model bytes are the image's own."""
    key = (kernel_list(model), eval_list(image), kernels, tuple(cpu_flags))
    if key not in _RUNNER_LINKS:
        _RUNNER_LINKS[key] = linked_flash(model, kernels, image, cpu_flags)
    return _RUNNER_LINKS[key]._replace(model_bytes=len(image.data))


def budgeted_image(model: bytes, kernels: str, budget: int = DEFAULT_CODE_BUDGET, cpu_flags=CORTEX_M4,
                   source: str = "model") -> BudgetedImage:
    """The prepared image of the fastest build choice whose runner code fits `budget` bytes, else of the fastest.

    Each choice's image is prepared on the host; when they differ, each is
    linked in turn (fastest first) for the core of `cpu_flags` at -Os until one
    fits. When none fits, speed is not given up for a budget missed anyway.
    Deterministic: the same model, kernels, budget and compiler give the same choice.
    """
    images: dict[int, PreparedImage] = {}
    for choices in CHOICES:
        image = prepared_image(model, kernels, source, choices)
        if all(image.data != other.data for other in images.values()):
            images[choices] = image
    if len(images) == 1:
        return BudgetedImage(images[0], 0, budget, {})
    linked: dict[int, LinkedFlash] = {}
    for choices, image in images.items():
        linked[choices] = runner_link(model, kernels, image, cpu_flags)
        if linked[choices].code_bytes <= budget:
            return BudgetedImage(image, choices, budget, linked)
    return BudgetedImage(images[0], 0, budget, linked)
