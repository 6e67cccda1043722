"""Deployment targets: flash and RAM budgets kept as YAML data in deploy/targets/.

A target is checked before anything is built or flashed, so a model that cannot
fit fails with both numbers in the message rather than at link time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from mcuforge.errors import MCUForgeError
from mcuforge.spec import parse_dataclass, spec_field

TARGETS_DIR = Path(__file__).resolve().parent / "targets"


@dataclass(frozen=True)
class Target:
    name: str = spec_field(help="the file's stem")
    cpu: str = spec_field(help="the CPU core, e.g. cortex-m4")
    flash_bytes: int = spec_field(min=1, help="flash available for the model")
    ram_bytes: int = spec_field(min=1, help="RAM available for the tensor arena")
    description: str = spec_field("")
    accelerator: str | None = spec_field(None, help="an NPU or TPU beside the CPU")


def target_names() -> list[str]:
    return sorted(path.stem for path in TARGETS_DIR.glob("*.yaml"))


def load_target(name: str) -> Target:
    """The target called `name`; MCUForgeError lists the known ones otherwise."""
    if name not in target_names():
        raise MCUForgeError(f"unknown target {name!r}: expected one of {', '.join(target_names())}")
    path = TARGETS_DIR / f"{name}.yaml"
    target = parse_dataclass(Target, yaml.safe_load(path.read_text()), f"target {name}")
    if target.name != name:
        raise MCUForgeError(f"{path}: name {target.name!r} does not match the file name {name!r}")
    return target


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
