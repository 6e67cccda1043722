"""Deployment targets and the chips they name, kept as YAML data (deploy/targets/, deploy/chips.yaml).

A chip's core, DSP extension, flash and RAM are stated once, in deploy/chips.yaml;
deploy targets and firmware boards both name a chip and read it from there.
A target is checked before anything is built or flashed, so a model that cannot
fit fails with both numbers in the message rather than at link time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from mcuforge.config import parse_dataclass, spec_field
from mcuforge.errors import MCUForgeError

DEPLOY_DIR = Path(__file__).resolve().parent
TARGETS_DIR = DEPLOY_DIR / "targets"
CHIPS_FILE = DEPLOY_DIR / "chips.yaml"


@dataclass(frozen=True)
class MemoryRegion:
    size: int = spec_field(help="bytes", min=1)
    origin: int | None = spec_field(None, help="start address; left out for a chip class", min=0)


@dataclass(frozen=True)
class Chip:
    """A chip (or a chip class) as stated in deploy/chips.yaml."""

    description: str
    cpu: str = spec_field(help="the CPU core, the GCC -mcpu value (e.g. cortex-m4)")
    dsp: bool = spec_field(help="the core has the DSP extension (SMLAD and friends)")
    flash: MemoryRegion = spec_field(help="where code, constants and the model live")
    ram: MemoryRegion = spec_field(help="where data, the tensor arena and the stack live")
    fpu: str | None = spec_field(None, help="GCC -mfpu value, none for soft float; left out for a chip class")
    name: str = field(default="", init=False)


@lru_cache(maxsize=None)
def _chip_data() -> dict:
    return yaml.safe_load(CHIPS_FILE.read_text())


def chip_names() -> list[str]:
    return sorted(_chip_data())


def load_chip(name: str, where: str) -> Chip:
    """The chip called `name` in deploy/chips.yaml; `where` names the file that asked for it."""
    data = _chip_data()
    if name not in data:
        raise MCUForgeError(f"{where}: chip: unknown chip {name!r}. Allowed: {', '.join(chip_names())}")
    chip = parse_dataclass(Chip, data[name], where=f"chips.yaml {name}")
    object.__setattr__(chip, "name", name)
    return chip


@dataclass(frozen=True)
class _TargetFile:
    name: str = spec_field(help="the file's stem")
    chip: str = spec_field(help="a chip of deploy/chips.yaml: its core, flash and RAM")
    description: str = spec_field("")
    accelerator: str | None = spec_field(None, help="an NPU or TPU beside the CPU")


@dataclass(frozen=True)
class Target:
    """A deployment target: its budgets are its chip's flash and RAM (deploy/chips.yaml)."""

    name: str
    cpu: str
    flash_bytes: int  # flash available for the model
    ram_bytes: int  # RAM available for the tensor arena
    description: str = ""
    accelerator: str | None = None
    chip: str = ""


def target_names() -> list[str]:
    return sorted(path.stem for path in TARGETS_DIR.glob("*.yaml"))


def load_target(name: str) -> Target:
    """The target called `name`; MCUForgeError lists the known ones otherwise."""
    if name not in target_names():
        raise MCUForgeError(f"unknown target {name!r}: expected one of {', '.join(target_names())}")
    path = TARGETS_DIR / f"{name}.yaml"
    stated = parse_dataclass(_TargetFile, yaml.safe_load(path.read_text()), f"target {name}")
    if stated.name != name:
        raise MCUForgeError(f"{path}: name {stated.name!r} does not match the file name {name!r}")
    chip = load_chip(stated.chip, f"target {name}")
    return Target(name, chip.cpu, chip.flash.size, chip.ram.size, stated.description, stated.accelerator, chip.name)


@dataclass(frozen=True)
class Fit:
    target: Target
    flash_needed: int
    ram_needed: int

    @property
    def fits(self) -> bool:
        return self.flash_needed <= self.target.flash_bytes and self.ram_needed <= self.target.ram_bytes

    def problems(self) -> list[str]:
        found = []
        if self.flash_needed > self.target.flash_bytes:
            found.append(f"flash: the model needs {self.flash_needed} bytes, {self.target.name} has {self.target.flash_bytes}")
        if self.ram_needed > self.target.ram_bytes:
            found.append(f"RAM: the tensor arena needs {self.ram_needed} bytes, {self.target.name} has {self.target.ram_bytes}")
        return found

    def check(self) -> None:
        """Raise MCUForgeError naming each budget the model exceeds, with both numbers."""
        if not self.fits:
            raise MCUForgeError(
                f"model does not fit target {self.target.name}: {'; '.join(self.problems())}. "
                "Compress the model (mcuforge compress) or choose a larger target"
            )
