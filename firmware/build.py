"""Firmware images: build one for a board from a .tflite (the orchestration; each step lives in its own module).

The image is the C application in firmware/app, our engine (firmware/runtime),
the board's support files and a generated app_data.c holding the model C array,
the input vectors and the labels. Boards: firmware/boards.py; generated C:
codegen.py; compile, link and the fit check: toolchain.py; runs: qemu.py and
console.py; real boards: flash.py.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from mcuforge.deploy.carray import check_identifier
from mcuforge.deploy.emulate import load_array
from mcuforge.deploy.export import LABELS_FILE, read_labels
from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.deploy.tflm import prepare_input
from mcuforge.errors import MCUForgeError
from mcuforge.firmware import codegen, toolchain
from mcuforge.firmware.boards import load_board
from mcuforge.firmware.code_budget import DEFAULT_CODE_BUDGET, budgeted_image
from mcuforge.firmware.engine import runtime_sources
from mcuforge.firmware.flash import to_uf2
from mcuforge.firmware.toolchain import APP_DIR, CONSOLE_SOURCE, CROSS, FirmwareImage

APP_INCLUDES = (APP_DIR, *toolchain.BOARD_INCLUDES)
DEFAULT_BUILD_ROOT = Path("build") / "firmware"
DEFAULT_VECTOR_SEED = 0


def _model_input(model_data: bytes, source: str):
    inputs = parse_tflite(model_data, source).main.input_tensors
    if len(inputs) != 1:
        raise MCUForgeError(f"{source} has {len(inputs)} inputs: the firmware feeds models with exactly one input")
    return inputs[0]


def _default_vectors(tensor, count: int = 1, seed: int = DEFAULT_VECTOR_SEED) -> np.ndarray:
    """`count` seeded random samples spanning the input's whole integer range (float32: uniform in [-1, 1))."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(tensor.numpy_dtype)
    shape = (count, *tensor.shape)
    if dtype == np.float32:
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    if dtype.kind not in "iu":
        raise MCUForgeError(f"input {tensor.name!r} is {dtype}: the firmware feeds integer or float32 inputs only")
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def build_image(
    model_path: Path | str,
    target: str,
    out_dir: Path | str | None = None,
    inputs: np.ndarray | Path | str | None = None,
    labels_path: Path | str | None = None,
    arena_bytes: int | None = None,
    optimization: str = "-O2",
    kernels: str | None = None,
    name: str | None = None,
    prepared: bool = True,
    cpu: str | None = None,
    code_budget: int | None = None,
) -> FirmwareImage:
    """Build `<out_dir>/<model name>.elf` (+ .bin, .hex, .map, and .uf2 for UF2 boards) for `target`.

    inputs: the test vectors the image carries, an array or a .npy, with the
    conventions of `mcuforge emulate` (integer arrays as they are, float arrays
    quantized, samples along the batch axis); default one seeded random sample.
    Labels come from `labels_path`, else a labels.txt beside the model, else none.
    arena_bytes: default the prepared image's exact arena, or for the interpreter
    codegen.engine_arena_bytes (the host engine's measurement plus a margin).
    kernels: the engine's kernel set, default the board's (Board.kernels).
    name: the image's file name and reported model name, default the model file's stem.
    prepared: the engine prepares the model on the host and the image carries the
    prepared model (firmware/prepared.py), run without a flatbuffer reader, planner
    or prepare; False links the interpreter, which loads the .tflite at boot.
    Either way only the kernels of the model's ops are linked.
    cpu: compile for this -mcpu instead of the board's core (Board.compiled_for).
    code_budget: bytes of runner code (the model's kernels, -Os, the board's core)
    the prepared image's loops should fit, default code_budget.DEFAULT_CODE_BUDGET:
    the fastest choice that fits is taken (code_budget.budgeted_image;
    FirmwareImage.engine_loops says which and why).
    Raises MCUForgeError with both numbers when the image does not fit the
    board; the previous image is then left as it was.
    """
    board = load_board(target) if cpu is None else load_board(target).compiled_for(cpu)
    model_path = Path(model_path)
    if not model_path.is_file():
        raise MCUForgeError(f"model {model_path} not found: pass a .tflite file (mcuforge convert writes one)")
    model_data = model_path.read_bytes()
    model_name = check_identifier(name) if name else re.sub(r"\W", "_", model_path.stem)
    tensor = _model_input(model_data, str(model_path))
    vectors, input_source = _vectors(inputs, tensor)
    labels = _labels(model_path, labels_path)
    kernels = kernels or board.kernels
    image_data = model_data
    budgeted = None
    if prepared:
        budgeted = budgeted_image(model_data, kernels, DEFAULT_CODE_BUDGET if code_budget is None else code_budget, board.cflags,
                                  str(model_path))
        image = budgeted.image
        image_data = image.data
        arena_bytes = arena_bytes if arena_bytes is not None else image.arena_bytes
    elif arena_bytes is None:
        arena_bytes = codegen.engine_arena_bytes(model_data, kernels)
    out_dir = Path(out_dir) if out_dir is not None else DEFAULT_BUILD_ROOT / target
    gcc = toolchain.gcc()

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{model_name}.") as tmp:
        work = Path(tmp)
        (work / "memory.ld").write_text(codegen.render_memory_script(board))
        (work / "app_data.c").write_text(codegen.render_app_data(model_name, image_data, vectors, input_source, labels, arena_bytes))
        model_source = APP_DIR / ("model_prepared.c" if prepared else "model_interpreter.c")
        sources = [APP_DIR / "main.c", model_source, CONSOLE_SOURCE, work / "app_data.c", *toolchain.board_sources(board), *runtime_sources(kernels)]
        if board.boot2:
            sources.append(codegen.boot2_source(board, work))
        flags = [*toolchain.board_c_flags(board, optimization), f'-DMF_KERNEL_LIST="{codegen.model_kernel_list(model_data)}"']
        if prepared:  # the runner calls the eval variants the image names, and links no other
            flags.append(f'-DMF_EVAL_LIST="{codegen.image_eval_list(image)}"')
        objects = [toolchain.compiled(gcc, source, flags, list(APP_INCLUDES), work) for source in sources]
        elf, map_file = work / f"{model_name}.elf", work / f"{model_name}.map"
        toolchain.link(gcc, board, objects, elf, map_file, model_name, len(image_data), arena_bytes)
        toolchain.run([CROSS + "objcopy", "-O", "binary", str(elf), str(work / f"{model_name}.bin")], "writing the .bin")
        toolchain.run([CROSS + "objcopy", "-O", "ihex", str(elf), str(work / f"{model_name}.hex")], "writing the .hex")
        artifacts = ["elf", "bin", "hex", "map"]
        if board.uf2_family:
            uf2 = to_uf2((work / f"{model_name}.bin").read_bytes(), board.flash.origin, board.uf2_family)
            (work / f"{model_name}.uf2").write_bytes(uf2)
            artifacts.append("uf2")
        size = toolchain.size_report(board, map_file, len(image_data), arena_bytes)
        for ext in artifacts:  # each artifact replaced whole, only once the build succeeded
            os.replace(work / f"{model_name}.{ext}", out_dir / f"{model_name}.{ext}")
    paths = {ext: out_dir / f"{model_name}.{ext}" for ext in ("elf", "bin", "hex", "map")}
    uf2_path = out_dir / f"{model_name}.uf2" if board.uf2_family else None
    return FirmwareImage(board, model_name, uf2=uf2_path, size=size, vectors=vectors, budgeted=budgeted, **paths)


def _vectors(inputs: np.ndarray | Path | str | None, tensor) -> tuple[np.ndarray, str]:
    """The input vectors as a batch of the input's dtype and shape, and where they came from."""
    if inputs is None:
        return _default_vectors(tensor), f"random-seed-{DEFAULT_VECTOR_SEED}"
    if isinstance(inputs, (str, Path)):
        return prepare_input(load_array(inputs), tensor), Path(inputs).name
    return prepare_input(np.asarray(inputs), tensor), "test-vectors"


def _labels(model_path: Path, labels_path: Path | str | None) -> list[str]:
    if labels_path is None and (model_path.parent / LABELS_FILE).is_file():
        labels_path = model_path.parent / LABELS_FILE
    return read_labels(labels_path) if labels_path is not None else []
