"""Boards: firmware/boards/<name>.yaml read into a Board, which names its chip (deploy/chips.yaml).

The chip states the core, FPU, DSP extension and memory map; the board adds
what is its own: clock, stack, console, cycle counter, how it is run (QEMU) or
flashed, and its C support files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import yaml

from mcuforge.config import parse_dataclass, spec_field
from mcuforge.deploy.targets import Chip, MemoryRegion, load_chip
from mcuforge.errors import MCUForgeError
from mcuforge.firmware.flash import FLASHERS
from mcuforge.hostbuild import FIRMWARE_DIR

BOARDS_DIR = FIRMWARE_DIR / "boards"


@dataclass(frozen=True)
class Board:
    """A target as stated in firmware/boards/<name>.yaml, with its chip."""

    description: str
    chip: str = spec_field(help="a chip of deploy/chips.yaml: core, FPU, DSP extension, flash and RAM")
    clock_hz: int = spec_field(help="core clock the firmware runs at", min=1)
    stack_bytes: int = spec_field(help="main stack", min=1024)
    console: str = spec_field(help="how results are reported", choices=("semihosting", "uart"))
    cycle_counter: str = spec_field(help="DWT CYCCNT where the core has it, else SysTick", choices=("dwt", "systick"))
    qemu_machine: str = spec_field(help="qemu-system-arm -M value, empty for real boards")
    sources: list[str] = spec_field(help="board C files, relative to firmware/boards")
    flashers: dict = spec_field({}, help="tools that put an image on the board, by preference, each with its arguments (empty for QEMU)")
    boot2: str = spec_field("", help="RP2040 second-stage loader source (checksummed and placed first)")
    uf2_family: int = spec_field(0, help="UF2 family id: when set, the build also writes a .uf2", min=0)
    name: str = field(default="", init=False)
    silicon: Chip | None = field(default=None, init=False)  # the chip it names, loaded

    @property
    def cpu(self) -> str:
        """The GCC -mcpu value."""
        return self.silicon.cpu

    @property
    def flash(self) -> MemoryRegion:
        return self.silicon.flash

    @property
    def ram(self) -> MemoryRegion:
        return self.silicon.ram

    @property
    def emulated(self) -> bool:
        return bool(self.qemu_machine)

    @property
    def kernels(self) -> str:
        """The engine's kernel set for this core: "dsp" where the chip has the DSP extension."""
        return "dsp" if self.silicon.dsp else "portable"

    def compiled_for(self, cpu: str) -> Board:
        """This board with its code compiled for `cpu`, an instruction set its core executes as is: Cortex-M0+
        (Armv6-M) code on qemu-m3's Cortex-M3 counts the instructions an M0+ runs, which QEMU does not emulate."""
        silicon = dataclasses.replace(self.silicon, cpu=cpu)
        object.__setattr__(silicon, "name", self.silicon.name)
        board = dataclasses.replace(self)
        for name, value in (("name", self.name), ("silicon", silicon)):
            object.__setattr__(board, name, value)
        return board

    @property
    def cflags(self) -> list[str]:
        flags = [f"-mcpu={self.silicon.cpu}", "-mthumb"]
        if self.silicon.fpu == "none":
            return [*flags, "-mfloat-abi=soft"]
        return [*flags, "-mfloat-abi=hard", f"-mfpu={self.silicon.fpu}"]


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(name: str) -> Board:
    """The board called `name`, validated; the error lists the boards there are."""
    path = BOARDS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise MCUForgeError(f"unknown target {name!r}: choose one of {', '.join(board_names())}")
    where = f"boards/{name}.yaml"
    board = parse_dataclass(Board, yaml.safe_load(path.read_text()), where=where)
    unknown = sorted(set(board.flashers) - set(FLASHERS))
    if unknown:
        raise MCUForgeError(f"{where}: flashers.{unknown[0]}: unknown tool. Allowed: {', '.join(FLASHERS)}")
    chip = load_chip(board.chip, where)
    if chip.fpu is None or chip.flash.origin is None or chip.ram.origin is None:
        raise MCUForgeError(f"{where}: chip: {chip.name!r} is a chip class (no FPU or memory origins in deploy/chips.yaml): name a chip a board can link for")
    object.__setattr__(board, "name", name)
    object.__setattr__(board, "silicon", chip)
    return board
