"""Prepared models: the image written on the host runs, compiled as C with the runner, bit for bit as TFLM.

The per-op cases also run through prepared images (oplib.assert_matches_tflm).
Here: the shared models from the generated C source, the flash and RAM the
image needs, and the reader's checks of format version, checksum and bounds.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest
from oplib import run_tflm

from mcuforge.firmware.engine import Engine, EngineError, RUNTIME_DIR, declare_prepared_runner, fuzz, runtime_sources
from mcuforge.hostbuild import build_shared_library
from mcuforge.firmware.prepared import (
    IMAGE_SYMBOL, PreparedEngine, PreparedImage, eval_list, image_source, kernel_list, prepared_image,
)

MODELS = Path(__file__).resolve().parents[3] / "shared" / "models" / "tflite-micro"
SHARED = ["hello_world/hello_world_int8.tflite", "micro_speech/micro_speech_quantized.tflite",
          "person_detection/person_detect.tflite"]
TFLM_ARENA_32BIT = {SHARED[0]: 676, SHARED[1]: 6788, SHARED[2]: 82292}  # issue 5, emulated Cortex-M4
MF_IMAGE_VERSION_WORD, MF_IMAGE_CHECKSUM = 1, 3


def compiled_image(image: PreparedImage, kernels: str, tmp_path: Path) -> PreparedEngine:
    """The image's C source compiled with the runner into a host library, run from its symbol."""
    source = tmp_path / "model_image.c"
    source.write_text(image_source(image))
    lib = ctypes.CDLL(str(build_shared_library("prepared_image", [*runtime_sources(kernels), source], [RUNTIME_DIR])))
    declare_prepared_runner(lib)
    address = ctypes.addressof(ctypes.c_uint32.in_dll(lib, IMAGE_SYMBOL))
    size = ctypes.c_size_t.in_dll(lib, f"{IMAGE_SYMBOL}_bytes").value
    engine = PreparedEngine(lib, address, size, source="compiled image")
    engine._library = lib
    return engine


@pytest.mark.parametrize("kernels", ["portable", "dsp"])
@pytest.mark.parametrize("name", SHARED)
def test_compiled_image_matches_tflm_on_the_shared_models(name, kernels, tmp_path):
    model = (MODELS / name).read_bytes()
    engine = compiled_image(prepared_image(model, kernels), kernels, tmp_path)
    rng = np.random.default_rng(14)
    with engine:
        for _ in range(3):
            inputs = [rng.integers(-128, 128, size=shape).astype(dtype) for shape, dtype in engine.input_specs()]
            for got, want in zip(engine.invoke(inputs), run_tflm(model, inputs)):
                np.testing.assert_array_equal(got.astype(np.int32), want.astype(np.int32))


def constant_bytes(model: bytes) -> int:
    """Bytes of the model's constant tensors (weights, biases, shapes), from the flatbuffer parser of deploy/."""
    from mcuforge.deploy.tflite_model import parse_tflite

    graph = parse_tflite(model, "model").main
    return sum(len(t.data) for t in graph.tensors if t.data is not None)


@pytest.mark.parametrize("name", SHARED)
def test_image_holds_the_constants_and_far_less_besides(name):
    """Flash: the constants (a fused op's fully connected filter coded where that pays: micro_speech's) plus less
    than 2 KB (no names, float scales or vtables); micro_speech and person_detect within 0.85x."""
    from test_ops_fused import filter_coding_saving

    model = (MODELS / name).read_bytes()
    image = prepared_image(model, "dsp")
    constants = constant_bytes(model) - filter_coding_saving(model)
    assert constants <= len(image.data) < constants + 2048 + 8 * 16 * 256  # + per-channel tables, 256 channels at most
    if name in SHARED[1:]:
        assert len(image.data) <= 0.85 * len(model), f"{len(image.data)} B against the .tflite's {len(model)} B"


@pytest.mark.parametrize("kernels", ["portable", "dsp"])
@pytest.mark.parametrize("name", SHARED)
def test_image_ram_is_the_activations_alone(name, kernels):
    """The runner's arena is less than the interpreter's (no model state, tables or records) and within 0.8x TFLM's."""
    model = (MODELS / name).read_bytes()
    image = prepared_image(model, kernels)
    with Engine(model, kernels=kernels) as engine:
        interpreter = engine.arena_used
    assert 0 < image.arena_bytes < interpreter
    assert image.arena_bytes <= 0.8 * TFLM_ARENA_32BIT[name]


def test_same_model_same_image():
    model = (MODELS / SHARED[1]).read_bytes()
    assert prepared_image(model, "dsp").data == prepared_image(model, "dsp").data


def _refused(data: bytes) -> str:
    with pytest.raises(EngineError) as caught:
        PreparedEngine.from_image(PreparedImage(data, 0), "portable")
    return caught.value.status


def _with_word(data: bytes, index: int, value: int) -> bytes:
    return data[: 4 * index] + value.to_bytes(4, "little") + data[4 * index + 4 :]


def _resealed(data: bytes) -> bytes:
    """`data` with its checksum recomputed (FNV-1a over the image, checksum word as 0), as the writer does."""
    value = 2166136261
    for i, byte in enumerate(_with_word(data, MF_IMAGE_CHECKSUM, 0)):
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return _with_word(data, MF_IMAGE_CHECKSUM, value)


def test_reader_refuses_a_changed_byte_another_format_version_and_a_short_image():
    image = prepared_image((MODELS / SHARED[0]).read_bytes(), "portable")
    assert _resealed(image.data) == image.data  # the test's checksum is the format's
    flipped = bytearray(image.data)
    flipped[len(flipped) // 2] ^= 1
    assert _refused(bytes(flipped)) == "MF_ERR_BAD_MODEL"
    assert _refused(_resealed(_with_word(image.data, MF_IMAGE_VERSION_WORD, 1))) == "MF_ERR_BAD_MODEL"
    assert _refused(image.data[:-8]) == "MF_ERR_BAD_MODEL"


def test_reader_refuses_an_arena_smaller_than_the_image_asks():
    image = prepared_image((MODELS / SHARED[1]).read_bytes(), "portable")
    buffer = ctypes.create_string_buffer(image.data, len(image.data) + 16)
    address = ctypes.addressof(buffer) + (-ctypes.addressof(buffer)) % 8
    ctypes.memmove(address, image.data, len(image.data))
    from mcuforge.firmware.engine import library

    with pytest.raises(EngineError) as caught:
        PreparedEngine(library("portable"), address, len(image.data), arena_bytes=image.arena_bytes - 4)
    assert caught.value.status == "MF_ERR_ARENA_TOO_SMALL"


@pytest.mark.slow
def test_mutated_images_do_not_crash_the_reader(tmp_path):
    """Sanitizer fuzzing of mf_prepared_open and the I/O accessors on mutated images (checksums mostly resealed)."""
    paths = []
    for name in SHARED[:2]:
        path = tmp_path / (Path(name).stem + ".mfp")
        path.write_bytes(prepared_image((MODELS / name).read_bytes(), "portable").data)
        paths.append(path)
    result = fuzz(paths, seconds=30, seed=20261128)
    assert result.iterations > 1000
    assert result.loaded > 0  # some mutants pass every check: the accessors behind them are exercised too


def qemu_prepared_run(model: bytes, x: np.ndarray, tmp_path: Path, target: str = "qemu-m4",
                      plugin: Path | None = None) -> tuple[list[int], int | None]:
    """A firmware of the runner, the model's kernels of the board's set and its image, built with the
    toolchain settings of mcuforge.firmware.build and run under QEMU: the first output, and with the
    qemu-icount `plugin` (mcuforge.firmware.icount.plugin()) the instructions of the inference."""
    import subprocess

    from mcuforge.firmware import boards, codegen, qemu, toolchain
    from mcuforge.hostbuild import STRICT_C_FLAGS

    board = boards.load_board(target)
    (tmp_path / "memory.ld").write_text(codegen.render_memory_script(board))
    image = prepared_image(model, board.kernels)
    (tmp_path / "image.c").write_text(image_source(image))
    (tmp_path / "model_kernels.h").write_text(kernel_list(model))
    (tmp_path / "evals.h").write_text(eval_list(image))
    values = ", ".join(str(int(v)) for v in x.reshape(-1))
    (tmp_path / "input.c").write_text(f"#include <stdint.h>\nconst int8_t test_input[] = {{{values}}};\n")
    sources = [Path(__file__).with_name("prepared_main.c"), tmp_path / "image.c", tmp_path / "input.c",
               boards.BOARDS_DIR / "common" / "startup.c", *(boards.BOARDS_DIR / s for s in board.sources),
               *runtime_sources(board.kernels)]
    elf = tmp_path / "prepared.elf"
    flags = [*STRICT_C_FLAGS, *board.cflags, "-O2", "-ffunction-sections", "-fdata-sections", "-ffreestanding",
             f"-I{RUNTIME_DIR}", f"-I{boards.BOARDS_DIR / 'common'}", f"-DMF_KERNEL_LIST=\"{tmp_path / 'model_kernels.h'}\"",
             f"-DMF_EVAL_LIST=\"{tmp_path / 'evals.h'}\""]
    objects = []
    for index, source in enumerate(sources):
        obj = tmp_path / f"{index}_{source.stem}.o"
        extra = [f"-DMF_MODEL_IMAGE_ARENA_BYTES={image.arena_bytes}"] if source.name == "prepared_main.c" else []
        subprocess.run([toolchain.CROSS + "gcc", *flags, *extra, "-c", str(source), "-o", str(obj)], check=True)
        objects.append(str(obj))
    subprocess.run([toolchain.CROSS + "gcc", *board.cflags, *objects, "-nostartfiles", "--specs=nano.specs",
                    "--specs=nosys.specs", f"-L{tmp_path}", f"-T{toolchain.LINKER_SCRIPT}", "-Wl,--gc-sections",
                    "-o", str(elf), "-lm"], check=True)
    symbols = subprocess.run([toolchain.CROSS + "nm", str(elf)], check=True, capture_output=True, text=True).stdout
    assert "__aeabi_d" not in symbols  # no soft-float double arithmetic linked
    # The runner calls the eval variants the image names: no kernel's dispatching eval, no unused variant.
    assert not re.search(r" T mf_(conv|depthwise_conv|fully_connected)_eval$|_int4_eval$|_eval_sparse$", symbols, re.M)
    count = []
    if plugin is not None:
        mark = int(re.search(r"^([0-9a-f]+) T mf_app_mark$", symbols, re.M)[1], 16)
        count = ["-plugin", f"{plugin},mark=0x{mark:x}", "-d", "plugin"]
    run = subprocess.run([qemu.QEMU, "-M", board.qemu_machine, "-nographic", "-monitor", "none", "-serial", "null",
                          "-semihosting-config", "enable=on,target=native", *count, "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=600)
    line = next(line for line in run.stdout.splitlines() if line.startswith(("OUT", "ERROR")))
    assert line.startswith("OUT"), line
    marks = {int(m[1]): int(m[2]) for m in re.finditer(r"^MARK (\d+) total=\d+ delta=(\d+)", run.stderr, re.M)}
    return [int(v) for v in line.split()[1:]], marks.get(1)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED[1:])
def test_prepared_image_on_qemu_m4_with_dsp_kernels_matches_tflm(name, tmp_path):
    model = (MODELS / name).read_bytes()
    with Engine(model) as engine:
        shape, dtype = engine.input_specs()[0]
    x = np.random.default_rng(28).integers(-128, 128, size=shape).astype(dtype)
    assert qemu_prepared_run(model, x, tmp_path)[0] == run_tflm(model, [x])[0].reshape(-1).astype(int).tolist()
