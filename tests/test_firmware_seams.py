"""The firmware's seams: the console protocol's failure branches, the fit check at its boundary, the object cache key.

The console runs go through run_qemu with a stand-in qemu-system-arm on PATH
that prints a scripted console and exits with a chosen status, so each branch
is reached exactly; the fit check links real images and reads them back with
arm-none-eabi-size.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.firmware import boards, build, console, qemu, toolchain

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite-micro"
HELLO = SHARED_MODELS / "hello_world" / "hello_world_int8.tflite"
# nRF52840's RAM from Nordic's datasheet (nRF52840 Product Specification v1.7, memory map), not from deploy/chips.yaml.
NRF52840_RAM = (0x20000000, 256 * 1024)
GOOD_VECTOR = "MF output 0 0 INT8 1x1 7f\nMF top 0 0 0 - 127\n"


@pytest.fixture
def hello_image(tmp_path) -> toolchain.FirmwareImage:
    """Function-scoped, so it is built after conftest points MCUFORGE_CACHE at the session's own cache."""
    return build.build_image(HELLO, "qemu-m4", out_dir=tmp_path / "hello")


def _fake_qemu(directory: Path, console_text: str, status: int, monkeypatch) -> None:
    """A qemu-system-arm on PATH that prints `console_text` and exits with `status`."""
    (directory / "console.txt").write_text(console_text)
    script = directory / qemu.QEMU
    script.write_text(f"#!/bin/sh\ncat {directory / 'console.txt'}\nexit {status}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")


def test_a_fault_line_fails_the_run_naming_the_fault(hello_image, tmp_path, monkeypatch):
    _fake_qemu(tmp_path, "MF model hello bytes=2704\nMF arena used=664 size=920\nMF fault hardfault\n", 3, monkeypatch)
    with pytest.raises(MCUForgeError, match=r"^hello_world_int8 failed on qemu-m4 \(QEMU mps2-an386\): fault hardfault$"):
        qemu.run_qemu(hello_image)


def test_a_run_that_exits_0_without_its_end_line_fails(hello_image, tmp_path, monkeypatch):
    _fake_qemu(tmp_path, "MF model hello bytes=2704\n" + GOOD_VECTOR + "MF cycles 0 1234\n", 0, monkeypatch)
    with pytest.raises(MCUForgeError, match=r"exited with status 0 without its end line \(MF done\); the last line it printed: MF cycles 0 1234"):
        qemu.run_qemu(hello_image)


def test_a_missing_cycles_line_fails_rather_than_shifting_the_counts(hello_image, tmp_path, monkeypatch):
    two_vectors = GOOD_VECTOR + GOOD_VECTOR.replace(" 0 ", " 1 ", 1).replace("top 0", "top 1")
    _fake_qemu(tmp_path, two_vectors + "MF cycles 1 99\nMF done\n", 0, monkeypatch)
    with pytest.raises(MCUForgeError, match="vector 0 reported its outputs but no cycles line"):
        qemu.run_qemu(hello_image)


def test_cycles_lines_are_matched_to_their_vectors_not_to_their_order():
    text = GOOD_VECTOR + GOOD_VECTOR.replace(" 0 ", " 1 ", 1) + "MF cycles 1 99\nMF cycles 0 1234\nMF done\n"
    assert console.parse_run(text).cycles == [1234, 99]


def test_a_repeated_cycles_line_is_refused():
    with pytest.raises(MCUForgeError, match="vector 0 reported two cycles lines"):
        console.parse_run(GOOD_VECTOR + "MF cycles 0 5\nMF cycles 0 6\nMF done\n")


def test_an_error_line_with_a_nonzero_status_reports_the_error_not_the_status(hello_image, tmp_path, monkeypatch):
    _fake_qemu(tmp_path, "MF model hello bytes=2704\nMF error invoke MF_ERR_BAD_MODEL\n", 1, monkeypatch)
    with pytest.raises(MCUForgeError, match=r": invoke MF_ERR_BAD_MODEL$"):
        qemu.run_qemu(hello_image)


def test_demo_lines_parse_with_the_same_parser():
    text = (
        "boot chatter that is not protocol\n"
        "MF model vibration bytes=100\nMF arena used=64 size=320\n"
        "MF window 0 start_ms=0 score_u=12 score=3f50624dd2f1a9fc cycles=77 features=0100ffff\n"
        "MF alarm 0 start_ms=0 score_u=12 threshold_u=10\nMF done windows=1 alarms=1\n"
    )
    result = console.check_run(console.parse_run(text), 0, "", "vibration demo")
    (window,) = result.lines_of("window")
    assert (result.model, result.arena_used, window.words[0]) == ("vibration", 64, "0")
    assert window.fields == {"start_ms": "0", "score_u": "12", "score": "3f50624dd2f1a9fc", "cycles": "77", "features": "0100ffff"}
    assert [line.words[0] for line in result.lines_of("alarm")] == ["0"]


# --- the fit check at its boundary -----------------------------------------------


def _size_sections(elf: Path) -> dict[str, tuple[int, int]]:
    """arm-none-eabi-size -A: {section: (size, address)} of the linked ELF."""
    out = subprocess.run(["arm-none-eabi-size", "-A", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    return {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+(\d+)$", out, re.M)}


def test_an_image_that_just_fits_builds_and_one_byte_more_does_not(tmp_path):
    origin, ram = NRF52840_RAM
    first = build.build_image(HELLO, "nrf52840dk", out_dir=tmp_path / "first")
    sections = _size_sections(first.elf)
    stack_size, stack_address = sections[".stack"]
    used = stack_address + stack_size - origin  # the stack is the last thing in RAM
    assert (first.size.data, first.size.bss, first.size.stack) == tuple(sections[s][0] for s in (".data", ".bss", ".stack"))
    assert first.size.ram_used == used
    exact = first.size.arena + ram - used

    fitting = build.build_image(HELLO, "nrf52840dk", out_dir=tmp_path / "fits", arena_bytes=exact)
    sections = _size_sections(fitting.elf)
    assert sections[".stack"][1] + sections[".stack"][0] == origin + ram  # RAM is full to its last byte
    assert fitting.size.ram_used == ram == fitting.size.ram_limit
    assert fitting.size.bss == sections[".bss"][0]

    with pytest.raises(MCUForgeError) as error:
        build.build_image(HELLO, "nrf52840dk", out_dir=tmp_path / "over", arena_bytes=exact + 1)
    message = str(error.value)
    needed = int(re.search(r"ram needs ([\d,]+) bytes, the board has 262,144", message)[1].replace(",", ""))
    assert ram < needed <= ram + 8  # one arena byte more, rounded up by the stack's 8-byte alignment
    assert f"arena {exact + 1:,}" in message
    assert not (tmp_path / "over" / "hello_world_int8.elf").exists()


# --- the object cache ----------------------------------------------------------


def test_the_object_key_includes_the_compiler_version(tmp_path):
    source = tmp_path / "a.c"
    source.write_text("int a;\n")
    cmd = ["arm-none-eabi-gcc", "-c", str(source)]
    assert toolchain.object_key(cmd, [source], [], "gcc 13.2.1\n") != toolchain.object_key(cmd, [source], [], "gcc 13.3.0\n")
    assert toolchain.object_key(cmd, [source], [], "gcc 13.2.1\n") == toolchain.object_key(cmd, [source], [], "gcc 13.2.1\n")


def test_a_new_compiler_version_rebuilds_the_cached_object(tmp_path, monkeypatch):
    """The same compiler path and flags, but `--version` prints another version: the object is compiled again."""
    monkeypatch.setenv("MCUFORGE_CACHE", str(tmp_path / "cache"))
    compiler = tmp_path / "gcc-wrapper"
    log = tmp_path / "compiles"

    def install(version: str) -> None:
        real = toolchain.gcc()
        compiler.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo "{version}"; exit 0; fi\necho x >> {log}\nexec {real} "$@"\n')
        compiler.chmod(0o755)
        toolchain.compiler_version.cache_clear()

    board = boards.load_board("qemu-m4")
    source = toolchain.board_sources(board)[0]
    flags = toolchain.board_c_flags(board)
    work = tmp_path / "work"
    work.mkdir()
    install("arm-none-eabi-gcc (fake) 13.2.1")
    first = toolchain.compiled(str(compiler), source, flags, list(toolchain.BOARD_INCLUDES), work)
    again = toolchain.compiled(str(compiler), source, flags, list(toolchain.BOARD_INCLUDES), work)
    assert again == first and log.read_text().count("x") == 1  # cached: compiled once
    install("arm-none-eabi-gcc (fake) 14.1.0")
    upgraded = toolchain.compiled(str(compiler), source, flags, list(toolchain.BOARD_INCLUDES), work)
    assert upgraded != first and upgraded.is_file() and log.read_text().count("x") == 2
    toolchain.compiler_version.cache_clear()
