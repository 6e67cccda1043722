"""The Arm GCC toolchain as the firmware uses it: compile (with an object cache), link, section sizes, the fit check.

Both the firmware images (firmware/build.py) and the demo applications
(firmware/demos.py) are compiled and linked here, so a board's flags, the
linker script and the size report are the same for both.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.firmware.boards import BOARDS_DIR, Board
from mcuforge.firmware.engine import KERNELS_DIR, RUNTIME_DIR, shadowed_kernel_source
from mcuforge.hostbuild import FIRMWARE_DIR, STRICT_C_FLAGS, cache_dir

if TYPE_CHECKING:  # code_budget links through this module
    from mcuforge.firmware.code_budget import BudgetedImage

CROSS = "arm-none-eabi-"
GCC_PACKAGE = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
LINKER_SCRIPT = BOARDS_DIR / "common" / "cortex_m.ld"
APP_DIR = FIRMWARE_DIR / "app"
CONSOLE_SOURCE = APP_DIR / "console.c"  # the console protocol's writer, linked into every application
BOARD_INCLUDES = (BOARDS_DIR / "common", RUNTIME_DIR)
_OVERFLOW = re.compile(r"region [`']?(\w+)'? overflowed by (\d+) bytes")
_MAP_SECTION = re.compile(r"^(\.[\w.]+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?: load address 0x([0-9a-fA-F]+))?", re.M)


@dataclass(frozen=True)
class SizeReport:
    """Section sizes of a linked image against its board's limits, in bytes.

    flash_used and ram_used are the spans the linker placed (from each region's
    origin to the end of its last section), so they include the alignment gaps
    between sections that the section sizes leave out: what the fit check compares.
    """

    board: str
    text: int
    data: int
    bss: int
    stack: int
    model: int
    arena: int
    flash_used: int
    ram_used: int
    flash_limit: int
    ram_limit: int

    def format(self) -> str:
        code = self.text - self.model
        flash_gaps = self.flash_used - self.text - self.data
        ram_gaps = self.ram_used - self.data - self.bss - self.stack
        return (
            f"{self.board}: flash {self.flash_used:,} / {self.flash_limit:,} B ({100 * self.flash_used / self.flash_limit:.1f}%)"
            f" = text {self.text:,} (model {self.model:,}, code and constants {code:,}) + data {self.data:,}"
            + (f" + alignment {flash_gaps:,}" if flash_gaps else "")
            + f"\n{' ' * len(self.board)}  RAM   {self.ram_used:,} / {self.ram_limit:,} B ({100 * self.ram_used / self.ram_limit:.1f}%)"
            f" = data {self.data:,} + bss {self.bss:,} (arena {self.arena:,}) + stack {self.stack:,}"
            + (f" + alignment {ram_gaps:,}" if ram_gaps else "")
        )


@dataclass(frozen=True)
class FirmwareImage:
    """A linked image and what it was built from; .bin, .hex and .uf2 name the ELF's siblings (or the ELF, for demos)."""

    board: Board
    model_name: str
    elf: Path
    bin: Path
    hex: Path
    map: Path
    uf2: Path | None
    size: SizeReport
    vectors: np.ndarray
    budgeted: BudgetedImage | None = None  # the prepared image and the loop choice under its code budget; None for the interpreter

    @property
    def engine_loops(self) -> str:
        """The build's loop choice and the measured code behind it; empty without a prepared image."""
        return self.budgeted.describe() if self.budgeted else ""


def tool(name: str, package: str) -> str:
    """The executable's path; a missing one names the package that provides it."""
    path = shutil.which(name)
    if path is None:
        raise MCUForgeError(f"{name} not found on PATH: install it (apt-get install {package})")
    return path


def gcc() -> str:
    return tool(CROSS + "gcc", GCC_PACKAGE)


def run(cmd: list[str], what: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a tool; a non-zero exit raises MCUForgeError saying `what` failed, with the tool's output."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise MCUForgeError(f"{what} failed:\n{(result.stderr or result.stdout).strip()}")
    return result


def board_c_flags(board: Board, optimization: str = "-O2") -> list[str]:
    """The flags every firmware C file is compiled with for `board`."""
    return [*STRICT_C_FLAGS, *board.cflags, optimization, "-g", "-ffunction-sections", "-fdata-sections", "-ffreestanding"]


@lru_cache(maxsize=None)
def compiler_version(compiler: str) -> str:
    """`compiler --version` as printed: part of every cached object's key, so a new compiler rebuilds."""
    return run([compiler, "--version"], f"asking {compiler} for its version").stdout


def object_key(cmd: list[str], sources: list[Path], headers: list[Path], version: str) -> str:
    """The cache key of one object: the compiler's version, the command line and every source and header byte."""
    digest = hashlib.sha256(version.encode())
    digest.update("\0".join(cmd).encode())
    for path in [*sources, *headers]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def compiled(compiler: str, source: Path, flags: list[str], includes: list[Path], work: Path) -> Path:
    """The object file for `source`, from a cache keyed by object_key.

    Files shipped with the package compile once per board and flag set; a
    generated file (one in `work`) is compiled for every image, into `work`.
    """
    cmd = [compiler, *flags, *(f"-I{d}" for d in includes), "-c", str(source)]
    if source.parent == work:
        obj = work / f"{source.stem}.o"
        run([*cmd, "-o", str(obj)], f"compiling {source.name}")
        return obj
    sources = [source]
    if source.parent.parent == KERNELS_DIR:  # a kernel-set file includes the portable file it replaces
        sources.append(shadowed_kernel_source(source))
    headers = sorted(h for d in includes for h in d.rglob("*.h"))
    obj = cache_dir().parent / "firmware" / f"{source.stem}-{object_key(cmd, sources, headers, compiler_version(compiler))}.o"
    if not obj.exists():
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(f".{os.getpid()}.tmp.o")  # same directory: os.replace stays atomic
        run([*cmd, "-o", str(tmp)], f"compiling {source.relative_to(FIRMWARE_DIR)} for the target")
        os.replace(tmp, obj)
    return obj


def board_sources(board: Board) -> list[Path]:
    """The startup code and the board's own C files."""
    return [BOARDS_DIR / "common" / "startup.c", *(BOARDS_DIR / s for s in board.sources)]


def link(compiler: str, board: Board, objects: list[Path], elf: Path, map_file: Path, what: str, model_bytes: int, arena_bytes: int) -> None:
    """Link `objects` for `board` with the memory.ld beside `elf`; raises the fit check's error when a region overflows."""
    cmd = [
        compiler, *board.cflags, *map(str, objects),
        "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
        f"-L{elf.parent}", f"-T{LINKER_SCRIPT}", "-Wl,--gc-sections", f"-Wl,-Map={map_file}",
        "-o", str(elf), "-lm",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        error = fit_error(board, what, model_bytes, arena_bytes, result.stderr)
        raise error or MCUForgeError(f"building {what} for {board.name} failed:\n{result.stderr.strip()}")


@dataclass(frozen=True)
class Section:
    """An output section of a linked image: where it runs, its size, where it is stored (the load address)."""

    address: int
    size: int
    load: int

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def load_end(self) -> int:
        return self.load + self.size


def map_sections(map_file: Path) -> dict[str, Section]:
    """Output sections (.text, .data, .bss, .stack, ...) from a GNU ld map file."""
    sections = {}
    for name, address, size, load in _MAP_SECTION.findall(Path(map_file).read_text()):
        sections[name] = Section(int(address, 16), int(size, 16), int(load or address, 16))
    return sections


FLASH_SECTIONS = (".text", ".ARM.exidx", ".data")  # .data is stored in flash, copied to RAM at reset
RAM_SECTIONS = (".data", ".bss", ".stack")


def size_report(board: Board, map_file: Path, model_bytes: int, arena_bytes: int) -> SizeReport:
    """The linked image's sections from its map file, against the board's flash and RAM."""
    sections = map_sections(map_file)
    size = {name: section.size for name, section in sections.items()}
    flash_end = max(sections[name].load_end for name in FLASH_SECTIONS if name in sections and sections[name].size)
    ram_end = max(sections[name].end for name in RAM_SECTIONS if name in sections and sections[name].size)
    return SizeReport(
        board=board.name,
        text=size.get(".text", 0) + size.get(".ARM.exidx", 0),
        data=size.get(".data", 0),
        bss=size.get(".bss", 0),
        stack=size.get(".stack", 0),
        model=model_bytes,
        arena=arena_bytes,
        flash_used=flash_end - board.flash.origin,
        ram_used=ram_end - board.ram.origin,
        flash_limit=board.flash.size,
        ram_limit=board.ram.size,
    )


def fit_error(board: Board, what: str, model_bytes: int, arena_bytes: int, linker_output: str) -> MCUForgeError | None:
    """The fit check: the error naming both numbers for each region the linker says overflowed, else None."""
    regions = {"FLASH": board.flash.size, "RAM": board.ram.size}
    problems = []
    for region, overflow in _OVERFLOW.findall(linker_output):
        limit = regions.get(region)
        if limit is not None:
            problems.append(f"{region.lower()} needs {limit + int(overflow):,} bytes, the board has {limit:,}")
    if not problems:
        return None
    return MCUForgeError(
        f"{what} does not fit {board.name}: {'; '.join(problems)} "
        f"(model {model_bytes:,} bytes in flash, arena {arena_bytes:,} + stack {board.stack_bytes:,} bytes in RAM): "
        "use a smaller model (mcuforge compress) or a board with more memory"
    )
