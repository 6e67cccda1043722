"""Firmware images: build one for a board from a .tflite, check it fits, run it in QEMU or flash it.

The image is the C application in firmware/app, our engine (firmware/runtime),
the board's support files and a generated app_data.c holding the model C array,
the input vectors and the labels. Boards are data (firmware/boards/<name>.yaml);
the linker script's memory regions are generated from that data, so each
board's flash and RAM are stated once. QEMU boards report over semihosting;
a run and its parse give the same RunResult on every board.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from mcuforge.errors import MCUForgeError
from mcuforge.firmware.engine import KERNELS_DIR, RUNTIME_DIR, runtime_sources, shadowed_kernel_source
from mcuforge.hostbuild import FIRMWARE_DIR, STRICT_C_FLAGS, cache_dir
from mcuforge.spec import parse_dataclass, spec_field

BOARDS_DIR = FIRMWARE_DIR / "boards"
APP_DIR = FIRMWARE_DIR / "app"
LINKER_SCRIPT = BOARDS_DIR / "common" / "cortex_m.ld"
DEFAULT_BUILD_ROOT = Path("build") / "firmware"
CROSS = "arm-none-eabi-"
QEMU = "qemu-system-arm"
# QEMU runs with -icount: virtual time advances 2**shift ns per guest
# instruction, so SysTick "cycles" are deterministic and equal
# instructions * clock_hz / 1e9 (not silicon cycles; see bench/firmware_icount.py).
QEMU_ICOUNT_SHIFT = 0
# The host engine's arena figure is an upper bound for a 32-bit target (its
# pointers and size_t are 8 bytes); the margin covers alignment differences.
ARENA_MARGIN_BYTES = 256
DEFAULT_VECTOR_SEED = 0
# Cores with the DSP extension (SMLAD and friends) build the kernels/dsp set.
DSP_CPUS = frozenset({"cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"})
_OVERFLOW = re.compile(r"region [`']?(\w+)'? overflowed by (\d+) bytes")
_NUMPY_DTYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "FLOAT32": np.float32, "INT64": np.int64, "BOOL": np.bool_}


@dataclass(frozen=True)
class MemoryRegion:
    origin: int = spec_field(help="start address", min=0)
    size: int = spec_field(help="bytes", min=1)


@dataclass(frozen=True)
class Board:
    """A target as stated in firmware/boards/<name>.yaml."""

    description: str
    cpu: str = spec_field(help="GCC -mcpu value")
    fpu: str = spec_field(help="GCC -mfpu value, or none for soft float")
    clock_hz: int = spec_field(help="core clock the firmware runs at", min=1)
    flash: MemoryRegion = spec_field(help="where code, constants and the model live")
    ram: MemoryRegion = spec_field(help="where data, bss (the arena) and the stack live")
    stack_bytes: int = spec_field(help="main stack", min=1024)
    console: str = spec_field(help="how results are reported", choices=("semihosting", "uart"))
    cycle_counter: str = spec_field(help="DWT CYCCNT where the core has it, else SysTick", choices=("dwt", "systick"))
    qemu_machine: str = spec_field(help="qemu-system-arm -M value, empty for real boards")
    sources: list[str] = spec_field(help="board C files, relative to firmware/boards")
    flashers: dict = spec_field({}, help="tools that put an image on the board, by preference, each with its arguments (empty for QEMU)")
    boot2: str = spec_field("", help="RP2040 second-stage loader source (checksummed and placed first)")
    uf2_family: int = spec_field(0, help="UF2 family id: when set, the build also writes a .uf2", min=0)
    name: str = field(default="", init=False)

    @property
    def emulated(self) -> bool:
        return bool(self.qemu_machine)

    @property
    def kernels(self) -> str:
        """The engine's kernel set for this core: "dsp" where the core has the DSP extension."""
        return "dsp" if self.cpu in DSP_CPUS else "portable"

    @property
    def cflags(self) -> list[str]:
        flags = [f"-mcpu={self.cpu}", "-mthumb"]
        if self.fpu == "none":
            return [*flags, "-mfloat-abi=soft"]
        return [*flags, "-mfloat-abi=hard", f"-mfpu={self.fpu}"]


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(name: str) -> Board:
    """The board called `name`, validated; the error lists the boards there are."""
    path = BOARDS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise MCUForgeError(f"unknown target {name!r}: choose one of {', '.join(board_names())}")
    board = parse_dataclass(Board, yaml.safe_load(path.read_text()), where=f"boards/{name}.yaml")
    unknown = sorted(set(board.flashers) - set(FLASHERS))
    if unknown:
        raise MCUForgeError(f"boards/{name}.yaml: flashers.{unknown[0]}: unknown tool. Allowed: {', '.join(FLASHERS)}")
    object.__setattr__(board, "name", name)
    return board


@dataclass(frozen=True)
class SizeReport:
    """Section sizes of a linked image against its board's limits, in bytes."""

    board: str
    text: int
    data: int
    bss: int
    stack: int
    model: int
    arena: int
    flash_limit: int
    ram_limit: int

    @property
    def flash_used(self) -> int:
        return self.text + self.data

    @property
    def ram_used(self) -> int:
        return self.data + self.bss + self.stack

    def format(self) -> str:
        code = self.text - self.model
        return (
            f"{self.board}: flash {self.flash_used:,} / {self.flash_limit:,} B ({100 * self.flash_used / self.flash_limit:.1f}%)"
            f" = text {self.text:,} (model {self.model:,}, code and constants {code:,}) + data {self.data:,}\n"
            f"{' ' * len(self.board)}  RAM   {self.ram_used:,} / {self.ram_limit:,} B ({100 * self.ram_used / self.ram_limit:.1f}%)"
            f" = data {self.data:,} + bss {self.bss:,} (arena {self.arena:,}) + stack {self.stack:,}"
        )


@dataclass(frozen=True)
class FirmwareImage:
    board: Board
    model_name: str
    elf: Path
    bin: Path
    hex: Path
    map: Path
    uf2: Path | None
    size: SizeReport
    vectors: np.ndarray


@dataclass
class RunResult:
    """What one run of the application reported; the same for QEMU and a board's console."""

    model: str = ""
    input_source: str = ""
    arena_used: int = 0
    outputs: list[list[np.ndarray]] = field(default_factory=list)
    top: list[list[tuple[int, str, int]]] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)
    done: bool = False
    error: str = ""
    text: str = ""


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MCUForgeError(f"{name} not found on PATH: install it (apt-get install {package})")
    return path


def _model_input(model_data: bytes, source: str):
    from mcuforge.deploy.tflite_model import parse_tflite

    inputs = parse_tflite(model_data, source).main.input_tensors
    if len(inputs) != 1:
        raise MCUForgeError(f"{source} has {len(inputs)} inputs: the firmware feeds models with exactly one input")
    return inputs[0]


def default_vectors(tensor, count: int = 1, seed: int = DEFAULT_VECTOR_SEED) -> np.ndarray:
    """`count` seeded random samples spanning the input's whole integer range."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(tensor.numpy_dtype)
    if dtype.kind not in "iu":
        raise MCUForgeError(f"input {tensor.name!r} is {dtype}: the firmware feeds integer (quantized) inputs only")
    info = np.iinfo(dtype)
    shape = (count, *tensor.shape)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _host_arena_bytes(model_data: bytes, kernels: str) -> int:
    from mcuforge.firmware.engine import Engine

    with Engine(model_data, kernels=kernels) as engine:
        return int(engine.arena_used)


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_identifier(name: str) -> str:
    from mcuforge.deploy.carray import check_identifier

    return check_identifier(name)


def render_app_data(model_name: str, model_data: bytes, vectors: np.ndarray, input_source: str, labels: list[str], arena_bytes: int) -> str:
    """app_data.c: everything app.h declares, for one image."""
    from mcuforge.deploy.carray import array_definition, hex_lines

    vector_bytes = vectors[0].nbytes
    # The console protocol separates fields by spaces, so labels carry none.
    label_list = ", ".join(_c_string("_".join(label.split())) for label in labels) or "0"
    return (
        "/* Generated by mcuforge.firmware.build: the model, its input vectors and labels. */\n"
        '#include "app.h"\n\n'
        f"{array_definition('app', model_data, language='c99')}\n"
        f"const char mf_app_model_name[] = {_c_string(model_name)};\n"
        f"const char mf_app_input_source[] = {_c_string('_'.join(input_source.split()))};\n"
        f"const unsigned int mf_app_vector_count = {len(vectors)};\n"
        f"const unsigned int mf_app_vector_bytes = {vector_bytes};\n"
        f"const unsigned char mf_app_vectors[] __attribute__((aligned(16))) = {{\n{hex_lines(vectors.tobytes())}\n}};\n"
        f"const unsigned int mf_app_label_count = {len(labels)};\n"
        f"const char *const mf_app_labels[] = {{{label_list}}};\n"
        f"unsigned char mf_app_arena[{arena_bytes}] __attribute__((aligned(16)));\n"
        f"const unsigned int mf_app_arena_bytes = {arena_bytes};\n"
    )


def render_memory_script(board: Board) -> str:
    """memory.ld for the board: its two regions and the stack size, from board.yaml."""
    return (
        f"/* Generated from boards/{board.name}.yaml. */\n"
        "MEMORY\n{\n"
        f"    FLASH (rx) : ORIGIN = 0x{board.flash.origin:08X}, LENGTH = 0x{board.flash.size:X}\n"
        f"    RAM (rwx) : ORIGIN = 0x{board.ram.origin:08X}, LENGTH = 0x{board.ram.size:X}\n"
        "}\n"
        f"__stack_size = 0x{board.stack_bytes:X};\n"
    )


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init all ones, not reflected): the RP2040 boot ROM's boot2 check."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


BOOT2_BYTES = 256
UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
UF2_FLAG_FAMILY_ID = 0x00002000
UF2_PAYLOAD_BYTES = 256


def to_uf2(image: bytes, base_address: int, family_id: int) -> bytes:
    """The image as UF2 blocks (what a board's USB mass-storage boot loader takes), 256 payload bytes each.

    Each 512-byte block: magic start words, flags, target address, payload size,
    block number, block count, family id, 476 data bytes (payload, zero padded), magic end.
    """
    chunks = [image[i : i + UF2_PAYLOAD_BYTES] for i in range(0, len(image), UF2_PAYLOAD_BYTES)]
    blocks = []
    for number, chunk in enumerate(chunks):
        header = struct.pack(
            "<8I", UF2_MAGIC[0], UF2_MAGIC[1], UF2_FLAG_FAMILY_ID, base_address + number * UF2_PAYLOAD_BYTES,
            UF2_PAYLOAD_BYTES, number, len(chunks), family_id,
        )  # fmt: skip
        blocks.append(header + chunk.ljust(476, b"\0") + struct.pack("<I", UF2_MAGIC[2]))
    return b"".join(blocks)


def _boot2_c(board: Board, work: Path) -> Path:
    """Assemble the board's boot2, pad it to 252 bytes, append its CRC, and wrap it in a C file."""
    from mcuforge.deploy.carray import hex_lines

    obj, raw = work / "boot2.o", work / "boot2.bin"
    _run([CROSS + "gcc", *board.cflags, "-c", str(BOARDS_DIR / board.boot2), "-o", str(obj)], "assembling boot2")
    _run([CROSS + "objcopy", "-O", "binary", "-j", ".text.boot2", str(obj), str(raw)], "extracting boot2")
    code = raw.read_bytes()
    if len(code) > BOOT2_BYTES - 4:
        raise MCUForgeError(f"{board.boot2} is {len(code)} bytes: boot2 must fit in {BOOT2_BYTES - 4} bytes before its CRC")
    padded = code.ljust(BOOT2_BYTES - 4, b"\0")
    image = padded + crc32_mpeg2(padded).to_bytes(4, "little")
    source = work / "boot2_image.c"
    source.write_text(
        "/* Generated: boot2 padded to 252 bytes plus its CRC-32, placed first in flash. */\n"
        f"__attribute__((section(\".boot2\"), used)) const unsigned char mfb_boot2_image[{BOOT2_BYTES}] = {{\n"
        f"{hex_lines(image)}\n}};\n"
    )
    return source


def _compiled(gcc: str, source: Path, flags: list[str], work: Path) -> Path:
    """The object file for `source`, from a cache keyed by the compiler flags and every source and header byte.

    The engine and board files compile once per board and flag set; only the
    generated app_data.c (which is in `work`) is compiled for every image.
    """
    includes = (APP_DIR, BOARDS_DIR / "common", RUNTIME_DIR)
    cmd = [gcc, *flags, *(f"-I{d}" for d in includes), "-c", str(source)]
    if source.parent == work:
        obj = work / f"{source.stem}.o"
        _run([*cmd, "-o", str(obj)], f"compiling {source.name}")
        return obj
    digest = hashlib.sha256("\0".join(cmd).encode())
    digest.update(source.read_bytes())
    if source.parent.parent == KERNELS_DIR:  # a kernel-set file includes the portable file it replaces
        digest.update(shadowed_kernel_source(source).read_bytes())
    for header in sorted(h for d in includes for h in d.rglob("*.h")):
        digest.update(header.read_bytes())
    obj = cache_dir().parent / "firmware" / f"{source.stem}-{digest.hexdigest()[:16]}.o"
    if not obj.exists():
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(f".{os.getpid()}.tmp.o")  # same directory: os.replace stays atomic
        _run([*cmd, "-o", str(tmp)], f"compiling {source.relative_to(FIRMWARE_DIR)} for the target")
        os.replace(tmp, obj)
    return obj


def _run(cmd: list[str], what: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise MCUForgeError(f"{what} failed:\n{(result.stderr or result.stdout).strip()}")
    return result


_MAP_SECTION = re.compile(r"^(\.[\w.]+)\s+0x[0-9a-fA-F]+\s+0x([0-9a-fA-F]+)", re.M)


def map_section_sizes(map_file: Path) -> dict[str, int]:
    """Output section sizes (.text, .data, .bss, .stack, ...) from a GNU ld map file."""
    return {name: int(size, 16) for name, size in _MAP_SECTION.findall(Path(map_file).read_text())}


def _fit_error(board: Board, model_name: str, model_bytes: int, arena_bytes: int, linker_output: str) -> MCUForgeError | None:
    regions = {"FLASH": board.flash.size, "RAM": board.ram.size}
    problems = []
    for region, overflow in _OVERFLOW.findall(linker_output):
        limit = regions.get(region)
        if limit is not None:
            problems.append(f"{region.lower()} needs {limit + int(overflow):,} bytes, the board has {limit:,}")
    if not problems:
        return None
    return MCUForgeError(
        f"{model_name} does not fit {board.name}: {'; '.join(problems)} "
        f"(model {model_bytes:,} bytes in flash, arena {arena_bytes:,} + stack {board.stack_bytes:,} bytes in RAM): "
        "use a smaller model (mcuforge compress) or a board with more memory"
    )


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
) -> FirmwareImage:
    """Build `<out_dir>/<model name>.elf` (+ .bin, .hex, .map, and .uf2 for UF2 boards) for `target`.

    inputs: the test vectors the image carries, an array or a .npy, with the
    conventions of `mcuforge emulate` (integer arrays as they are, float arrays
    quantized, samples along the batch axis); default one seeded random sample.
    Labels come from `labels_path`, else a labels.txt beside the model, else none.
    arena_bytes: default the host engine's measurement plus a margin.
    kernels: the engine's kernel set, default the board's (Board.kernels).
    name: the image's file name and reported model name, default the model file's stem.
    Raises MCUForgeError with both numbers when the image does not fit the
    board; the previous image is then left as it was.
    """
    board = load_board(target)
    model_path = Path(model_path)
    if not model_path.is_file():
        raise MCUForgeError(f"model {model_path} not found: pass a .tflite file (mcuforge convert writes one)")
    model_data = model_path.read_bytes()
    model_name = _check_identifier(name) if name else re.sub(r"\W", "_", model_path.stem)
    tensor = _model_input(model_data, str(model_path))
    vectors, input_source = _vectors(inputs, tensor)
    labels = _labels(model_path, labels_path)
    kernels = kernels or board.kernels
    if arena_bytes is None:
        arena_bytes = _host_arena_bytes(model_data, kernels) + ARENA_MARGIN_BYTES
    out_dir = Path(out_dir) if out_dir is not None else DEFAULT_BUILD_ROOT / target
    gcc = _tool(CROSS + "gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{model_name}.") as tmp:
        work = Path(tmp)
        (work / "memory.ld").write_text(render_memory_script(board))
        (work / "app_data.c").write_text(
            render_app_data(model_name, model_data, vectors, input_source, labels, arena_bytes)
        )
        sources = [
            APP_DIR / "main.c",
            work / "app_data.c",
            BOARDS_DIR / "common" / "startup.c",
            *(BOARDS_DIR / s for s in board.sources),
            *runtime_sources(kernels),
        ]
        if board.boot2:
            sources.append(_boot2_c(board, work))
        elf, map_file = work / f"{model_name}.elf", work / f"{model_name}.map"
        flags = [*STRICT_C_FLAGS, *board.cflags, optimization, "-g", "-ffunction-sections", "-fdata-sections", "-ffreestanding"]
        objects = [_compiled(gcc, source, flags, work) for source in sources]
        cmd = [
            gcc, *board.cflags, *map(str, objects),
            "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
            f"-L{work}", f"-T{LINKER_SCRIPT}", "-Wl,--gc-sections", f"-Wl,-Map={map_file}",
            "-o", str(elf), "-lm",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            error = _fit_error(board, model_name, len(model_data), arena_bytes, result.stderr)
            raise error or MCUForgeError(f"building {model_name} for {target} failed:\n{result.stderr.strip()}")
        _run([CROSS + "objcopy", "-O", "binary", str(elf), str(work / f"{model_name}.bin")], "writing the .bin")
        _run([CROSS + "objcopy", "-O", "ihex", str(elf), str(work / f"{model_name}.hex")], "writing the .hex")
        artifacts = ["elf", "bin", "hex", "map"]
        if board.uf2_family:
            uf2 = to_uf2((work / f"{model_name}.bin").read_bytes(), board.flash.origin, board.uf2_family)
            (work / f"{model_name}.uf2").write_bytes(uf2)
            artifacts.append("uf2")
        sections = map_section_sizes(map_file)
        size = SizeReport(
            board=target,
            text=sections.get(".text", 0) + sections.get(".ARM.exidx", 0),
            data=sections.get(".data", 0),
            bss=sections.get(".bss", 0),
            stack=sections.get(".stack", 0),
            model=len(model_data),
            arena=arena_bytes,
            flash_limit=board.flash.size,
            ram_limit=board.ram.size,
        )
        for ext in artifacts:  # each artifact replaced whole, only once the build succeeded
            os.replace(work / f"{model_name}.{ext}", out_dir / f"{model_name}.{ext}")
    paths = {ext: out_dir / f"{model_name}.{ext}" for ext in ("elf", "bin", "hex", "map")}
    uf2_path = out_dir / f"{model_name}.uf2" if board.uf2_family else None
    return FirmwareImage(board, model_name, uf2=uf2_path, size=size, vectors=vectors, **paths)


def _vectors(inputs: np.ndarray | Path | str | None, tensor) -> tuple[np.ndarray, str]:
    """The input vectors as a batch of the input's dtype and shape, and where they came from."""
    from mcuforge.deploy.emulate import load_array
    from mcuforge.deploy.tflm import prepare_input

    if inputs is None:
        return default_vectors(tensor), f"random-seed-{DEFAULT_VECTOR_SEED}"
    if isinstance(inputs, (str, Path)):
        return prepare_input(load_array(inputs), tensor), Path(inputs).name
    return prepare_input(np.asarray(inputs), tensor), "test-vectors"


def _labels(model_path: Path, labels_path: Path | str | None) -> list[str]:
    from mcuforge.deploy.export import LABELS_FILE, read_labels

    if labels_path is None and (model_path.parent / LABELS_FILE).is_file():
        labels_path = model_path.parent / LABELS_FILE
    return read_labels(labels_path) if labels_path is not None else []


def parse_run(text: str) -> RunResult:
    """The RunResult of an application's console output (see firmware/app/main.c for the lines)."""
    result = RunResult(text=text)
    for line in text.splitlines():
        parts = line.strip().split(" ")
        if len(parts) < 2 or parts[0] != "MF":
            continue
        key, args = parts[1], parts[2:]
        if key == "model":
            result.model = args[0]
        elif key == "input":
            result.input_source = args[0]
        elif key == "arena":
            result.arena_used = int(args[0].removeprefix("used="))
        elif key == "output":
            vector, index, dtype, dims, payload = int(args[0]), int(args[1]), args[2], args[3], args[4] if len(args) > 4 else ""
            while len(result.outputs) <= vector:
                result.outputs.append([])
            shape = tuple(int(d) for d in dims.split("x")) if dims else ()
            array = np.frombuffer(bytes.fromhex(payload), dtype=_NUMPY_DTYPES[dtype]).reshape(shape)
            result.outputs[vector].insert(index, array)
        elif key == "top":
            vector = int(args[0])
            while len(result.top) <= vector:
                result.top.append([])
            result.top[vector].append((int(args[2]), args[3], int(args[4])))
        elif key == "cycles":
            result.cycles.append(int(args[1]))
        elif key == "done":
            result.done = True
        elif key in ("error", "fault"):
            result.error = " ".join(args) if key == "error" else f"fault {' '.join(args)}"
    return result


def qemu_command(image: FirmwareImage, extra: list[str] = ()) -> list[str]:
    """The qemu-system-arm command line that runs `image` with semihosting and no display."""
    if not image.board.emulated:
        raise MCUForgeError(f"{image.board.name} is a real board, not emulated: put the image on it with `mcuforge firmware flash` (make flash)")
    return [
        _tool(QEMU, "qemu-system-arm"),
        "-M", image.board.qemu_machine,
        "-nographic", "-monitor", "none", "-serial", "null",
        "-semihosting-config", "enable=on,target=native",
        "-icount", f"shift={QEMU_ICOUNT_SHIFT}",
        *extra,
        "-kernel", str(image.elf),
    ]  # fmt: skip


def run_qemu(image: FirmwareImage, timeout: float = 120.0) -> RunResult:
    """Run the image in QEMU until the application exits (or `timeout` seconds), and parse what it printed."""
    cmd = qemu_command(image)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(
            f"{image.elf} did not finish in QEMU ({image.board.qemu_machine}) within {timeout:.0f} s: "
            "the firmware hung or the model is too slow for the emulator; raise the timeout or use fewer vectors"
        ) from None
    result = parse_run(proc.stdout)
    if proc.returncode != 0 or not result.done:
        reason = result.error or proc.stderr.strip() or f"exit status {proc.returncode}"
        raise MCUForgeError(f"{image.model_name} failed on {image.board.name} (QEMU {image.board.qemu_machine}): {reason}")
    return result


@dataclass(frozen=True)
class Flasher:
    """A flashing tool: how to install it, how to list an attached probe, how to write an image.

    `args` are the board's arguments for the tool (boards/<name>.yaml, `flashers:`).
    """

    tools: tuple[str, ...]  # executables it needs on PATH, the first one named in messages
    package: str
    probe: Callable[[list[str]], list[str]]
    attached: Callable[[str, int], bool]
    write: Callable[[FirmwareImage, list[str]], list[str]]


FLASHERS = {
    "openocd": Flasher(
        ("openocd",), "openocd (apt-get install openocd)",
        lambda args: ["openocd", *args, "-c", "init; shutdown"],
        lambda output, status: status == 0,
        lambda image, args: ["openocd", *args, "-c", f"program {image.elf} verify reset exit"],
    ),
    "st-flash": Flasher(
        ("st-flash", "st-info"), "stlink-tools (apt-get install stlink-tools)",
        lambda args: ["st-info", "--probe"],
        lambda output, status: status == 0 and int((re.search(r"Found (\d+) stlink", output) or [0, "0"])[1]) > 0,
        lambda image, args: ["st-flash", *args, "--reset", "write", str(image.bin), f"0x{image.board.flash.origin:08x}"],
    ),
    "pyocd": Flasher(
        ("pyocd",), "pyocd (pip install pyocd)",
        lambda args: ["pyocd", "list", "--probes"],
        lambda output, status: status == 0 and "No available debug probes" not in output and re.search(r"^\s*\d+\s", output, re.M) is not None,
        lambda image, args: ["pyocd", "flash", *args, str(image.hex)],
    ),
    "picotool": Flasher(
        ("picotool",), "picotool (apt-get install picotool)",
        lambda args: ["picotool", "info"],
        lambda output, status: status == 0,
        lambda image, args: ["picotool", "load", *args, "-x", str(image.uf2)],
    ),
}
PROBE_TIMEOUT_S = 10.0
FLASH_TIMEOUT_S = 120.0


def flash_image(image: FirmwareImage) -> str:
    """Write the image to an attached board; returns the flasher's output.

    Fails fast, never hangs: the tool must be on PATH, then a probe must
    answer within PROBE_TIMEOUT_S seconds, else MCUForgeError says which is missing.
    """
    board = image.board
    if board.emulated:
        raise MCUForgeError(f"{board.name} is emulated: run it with `mcuforge firmware run` (make flash does)")
    installed = [name for name in board.flashers if all(shutil.which(tool) for tool in FLASHERS[name].tools)]
    if not installed:
        names = " or ".join(board.flashers)
        packages = " or ".join(FLASHERS[name].package for name in board.flashers)
        raise MCUForgeError(f"cannot flash {board.name}: {names} is not installed (not on PATH); install {packages}")
    name = installed[0]
    flasher, args = FLASHERS[name], board.flashers[name]
    try:
        probe = subprocess.run(flasher.probe(args), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(f"cannot flash {board.name}: {name} found no probe within {PROBE_TIMEOUT_S:.0f} s; connect the board over USB") from None
    output = probe.stdout + probe.stderr
    if not flasher.attached(output, probe.returncode):
        detail = output.strip().splitlines()[-1] if output.strip() else f"exit status {probe.returncode}"
        raise MCUForgeError(f"cannot flash {board.name}: no debug probe or board found by {name} ({detail}); connect the board over USB")
    started = time.monotonic()
    try:
        result = subprocess.run(flasher.write(image, args), capture_output=True, text=True, timeout=FLASH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise MCUForgeError(f"flashing {board.name} with {name} did not finish within {FLASH_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        raise MCUForgeError(f"flashing {board.name} with {name} failed: {(result.stderr or result.stdout).strip()}")
    return f"{result.stdout}{result.stderr}flashed {image.elf.name} to {board.name} in {time.monotonic() - started:.1f} s"
