"""Putting an image on a real board: the flashing tools, and the boot formats images need (RP2040 boot2 CRC, UF2)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcuforge.errors import MCUForgeError

if TYPE_CHECKING:
    from mcuforge.firmware.toolchain import FirmwareImage

PROBE_TIMEOUT_S = 10.0
FLASH_TIMEOUT_S = 120.0
BOOT2_BYTES = 256
UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
UF2_FLAG_FAMILY_ID = 0x00002000
UF2_PAYLOAD_BYTES = 256


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init all ones, not reflected): the RP2040 boot ROM's boot2 check."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


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
