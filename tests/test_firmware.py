"""Firmware images: every board builds and fits, the fit check, flashing without hardware, the boot artifacts.

QEMU runs compared with TFLM are in test_firmware_qemu.py.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.firmware import boards, build, console, engine, flash, latency_model, toolchain
from mcuforge.firmware.prepared import prepared_image

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite-micro"
HELLO = SHARED_MODELS / "hello_world" / "hello_world_int8.tflite"
REAL_BOARDS = ("stm32f746g-disco", "nrf52840dk", "rp2040-pico")
QEMU_BOARDS = ("qemu-m3", "qemu-m4", "qemu-m7", "qemu-m33", "qemu-m55")
# Flash and RAM of each board from its vendor's datasheet, written here independently of boards/*.yaml.
DATASHEET = {
    "stm32f746g-disco": (0x08000000, 1024 * 1024, 0x20000000, 320 * 1024),
    "nrf52840dk": (0x00000000, 1024 * 1024, 0x20000000, 256 * 1024),
    "rp2040-pico": (0x10000000, 2 * 1024 * 1024, 0x20000000, 264 * 1024),
}


def _symbols(elf: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (line.split() for line in out.splitlines()) if len(parts) == 3}


def _words(image: bytes, offset: int, count: int) -> tuple[int, ...]:
    return struct.unpack_from(f"<{count}I", image, offset)


def test_board_list_has_the_five_emulated_and_three_real_targets():
    assert set(boards.board_names()) == {*QEMU_BOARDS, *REAL_BOARDS}
    for name in QEMU_BOARDS:
        assert boards.load_board(name).emulated
    for name in REAL_BOARDS:
        assert not boards.load_board(name).emulated


@pytest.mark.parametrize("name", REAL_BOARDS)
def test_real_board_memory_matches_the_datasheet(name):
    board = boards.load_board(name)
    assert (board.flash.origin, board.flash.size, board.ram.origin, board.ram.size) == DATASHEET[name]


@pytest.mark.parametrize("name,kernels", [("qemu-m3", "portable"), ("rp2040-pico", "portable"), ("qemu-m4", "dsp"), ("qemu-m55", "dsp")])
def test_cores_with_the_dsp_extension_link_the_dsp_kernels(name, kernels, tmp_path):
    """Only the kernels of the model's ops are linked (hello_world: FULLY_CONNECTED), in the board's kernel set,
    and a prepared image needs no flatbuffer reader or planner on the device."""
    image = build.build_image(HELLO, name, out_dir=tmp_path)
    info = subprocess.run(["arm-none-eabi-readelf", "--debug-dump=info", str(image.elf)], capture_output=True, text=True, check=True).stdout
    linked = set(re.findall(r"DW_AT_name\s*:.*?/firmware/(runtime/\S+\.c)$", info, re.M))
    kernel_files = {p for p in linked if p.startswith("runtime/kernels/") and p.count("/") >= 2}
    assert image.board.kernels == kernels
    if kernels == "dsp":
        assert "runtime/kernels/dsp/fully_connected.c" in linked and "runtime/kernels/fully_connected.c" not in linked
    else:
        assert "runtime/kernels/fully_connected.c" in linked and not {p for p in linked if "/dsp/" in p}
    assert not {p for p in kernel_files if re.search(r"/(conv|depthwise_conv|softmax|add|pooling)\.c$", p)}
    assert "runtime/mf_prepared.c" in linked and not linked & {f"runtime/{name}" for name in latency_model.HOST_ONLY_SOURCES}


def test_an_interpreter_image_carries_the_tflite_byte_for_byte(tmp_path):
    image = build.build_image(HELLO, "qemu-m4", out_dir=tmp_path, prepared=False)
    assert image.size.model == HELLO.stat().st_size
    symbols = _symbols(image.elf)
    offset = symbols["g_app_model_data"] - image.board.flash.origin
    assert image.bin.read_bytes()[offset : offset + image.size.model] == HELLO.read_bytes()


def test_unknown_target_lists_the_boards():
    with pytest.raises(MCUForgeError, match="unknown target 'qemu-m99'.*qemu-m4.*stm32f746g-disco"):
        boards.load_board("qemu-m99")


@pytest.mark.parametrize("name", [*QEMU_BOARDS, *REAL_BOARDS])
def test_every_board_image_builds_and_fits(name, tmp_path):
    image = build.build_image(HELLO, name, out_dir=tmp_path)
    board = image.board
    for path in (image.elf, image.bin, image.hex, image.map):
        assert path.is_file() and path.stat().st_size > 0
    prepared = prepared_image(HELLO.read_bytes(), board.kernels).data
    assert image.size.model == len(prepared) < HELLO.stat().st_size
    assert image.size.text > image.size.model
    assert image.size.flash_used <= board.flash.size and image.size.ram_used <= board.ram.size
    # The vector table: initial SP at the top of the stack in RAM, reset handler (Thumb) in flash.
    binary = image.bin.read_bytes()
    table = 0x100 if board.boot2 else 0
    stack_top, reset = _words(binary, table, 2)
    symbols = _symbols(image.elf)
    assert stack_top == symbols["__stack_top"]
    assert board.ram.origin < stack_top <= board.ram.origin + board.ram.size
    assert reset == symbols["mfb_reset"] | 1
    assert board.flash.origin <= symbols["mfb_reset"] < board.flash.origin + board.flash.size
    assert symbols["mfb_vectors"] == board.flash.origin + table
    # The model array is 16-byte aligned and holds the prepared image byte for byte.
    model_at = symbols["g_app_model_data"]
    assert model_at % 16 == 0
    offset = model_at - board.flash.origin
    assert binary[offset : offset + image.size.model] == prepared


@pytest.mark.parametrize("name", REAL_BOARDS)
def test_person_detect_fits_every_real_board(name, tmp_path):
    model = SHARED_MODELS / "person_detection" / "person_detect.tflite"
    image = build.build_image(model, name, out_dir=tmp_path)
    flash, ram = DATASHEET[name][1], DATASHEET[name][3]
    assert len(prepared_image(model.read_bytes(), image.board.kernels).data) < image.size.flash_used <= flash
    assert image.size.arena + image.size.stack <= image.size.ram_used <= ram


def test_rp2040_image_starts_with_a_checksummed_boot2_and_has_a_uf2(tmp_path):
    image = build.build_image(HELLO, "rp2040-pico", out_dir=tmp_path)
    binary = image.bin.read_bytes()
    assert int.from_bytes(binary[252:256], "little") == flash.crc32_mpeg2(binary[:252])
    uf2 = image.uf2.read_bytes()
    assert len(uf2) == 512 * -(-len(binary) // 256)
    payload = b"".join(uf2[i + 32 : i + 32 + 256] for i in range(0, len(uf2), 512))
    assert payload[: len(binary)] == binary


def test_crc32_mpeg2_check_value():
    # The catalogue check value of CRC-32/MPEG-2 (reveng.sourceforge.io/crc-catalogue).
    assert flash.crc32_mpeg2(b"123456789") == 0x0376E6E7


def test_uf2_blocks_follow_the_spec():
    image = bytes(range(256)) + b"\xaa" * 44  # 300 bytes: one full block, one partial
    uf2 = flash.to_uf2(image, 0x10000000, 0xE48BFF56)
    assert len(uf2) == 2 * 512
    for number in range(2):
        block = uf2[512 * number : 512 * (number + 1)]
        assert block[:8] == b"UF2\n" + bytes.fromhex("57515d9e")  # magic start words as the spec spells them
        flags, address, size, index, total, family = struct.unpack_from("<6I", block, 8)
        assert (flags, address, size, index, total, family) == (0x2000, 0x10000000 + 256 * number, 256, number, 2, 0xE48BFF56)
        assert block[-4:] == bytes.fromhex("306fb10a")
    assert uf2[32:288] == image[:256]
    assert uf2[512 + 32 : 512 + 32 + 44] == image[256:] and uf2[512 + 32 + 44 : 512 + 508] == bytes(476 - 44)


def test_fit_check_names_both_numbers_when_the_arena_does_not_fit(tmp_path):
    ram = DATASHEET["stm32f746g-disco"][3]
    with pytest.raises(MCUForgeError) as error:
        build.build_image(HELLO, "stm32f746g-disco", out_dir=tmp_path, arena_bytes=400_000)
    message = str(error.value)
    needed = int(re.search(r"ram needs ([\d,]+) bytes", message)[1].replace(",", ""))
    assert f"the board has {ram:,}" in message
    assert needed >= 400_000 + 8192  # the arena plus the stack, at least
    assert "does not fit stm32f746g-disco" in message and "arena 400,000" in message


@pytest.fixture(scope="module")
def oversized_model(tmp_path_factory) -> Path:
    """A valid int8 model of about 1.1 MB: one 1100x1024 fully connected layer."""
    import tensorflow as tf

    from mcuforge.deploy.convert import convert_model

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((1100,)), tf.keras.layers.Dense(1024)])
    representative = np.random.default_rng(0).normal(size=(8, 1100)).astype(np.float32)
    path = tmp_path_factory.mktemp("big") / "big.tflite"
    path.write_bytes(convert_model(model, representative))
    return path


def test_fit_check_names_both_numbers_when_the_model_does_not_fit_flash(oversized_model, tmp_path):
    flash = DATASHEET["nrf52840dk"][1]
    model_bytes = len(prepared_image(oversized_model.read_bytes(), "dsp").data)  # what the image carries
    assert model_bytes > flash
    good = build.build_image(HELLO, "nrf52840dk", out_dir=tmp_path)
    big_name_elf = tmp_path / "big.elf"
    with pytest.raises(MCUForgeError) as error:
        build.build_image(oversized_model, "nrf52840dk", out_dir=tmp_path, arena_bytes=8192)
    message = str(error.value)
    needed = int(re.search(r"flash needs ([\d,]+) bytes", message)[1].replace(",", ""))
    assert needed > model_bytes
    assert f"the board has {flash:,}" in message and f"model {model_bytes:,} bytes" in message
    assert not big_name_elf.exists() and good.elf.is_file()


def test_a_failed_build_keeps_the_last_good_image(tmp_path):
    good = build.build_image(HELLO, "qemu-m4", out_dir=tmp_path)
    before = good.elf.read_bytes()
    with pytest.raises(MCUForgeError):
        build.build_image(HELLO, "qemu-m4", out_dir=tmp_path, arena_bytes=8 * 1024 * 1024)
    assert good.elf.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_vectors_of_the_wrong_dtype_are_refused(tmp_path):
    with pytest.raises(MCUForgeError, match="int8"):
        build.build_image(HELLO, "qemu-m4", out_dir=tmp_path, inputs=np.zeros((2, 1), np.int16))


def _fake_tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


@pytest.fixture(scope="module")
def board_images(tmp_path_factory) -> dict[str, toolchain.FirmwareImage]:
    out = tmp_path_factory.mktemp("boards")
    return {name: build.build_image(HELLO, name, out_dir=out / name) for name in REAL_BOARDS}


@pytest.mark.parametrize(
    "name,tools",
    [("stm32f746g-disco", "openocd or st-flash"), ("nrf52840dk", "pyocd"), ("rp2040-pico", "picotool or openocd")],
)
def test_flashing_without_the_tool_names_it(name, tools, board_images, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no flasher anywhere
    with pytest.raises(MCUForgeError, match=f"cannot flash {name}: {tools} is not installed"):
        flash.flash_image(board_images[name])


# What each tool prints when no board is attached (their real messages).
NO_PROBE = {
    "openocd": ("echo 'Error: open failed' >&2; exit 1", "openocd"),
    "pyocd": ("echo 'No available debug probes are connected'; exit 0", "pyocd"),
    "picotool": ("echo 'No accessible RP2040 devices in BOOTSEL mode were found.'; exit 249", "picotool"),
}


@pytest.mark.parametrize("name,tool", [("stm32f746g-disco", "openocd"), ("nrf52840dk", "pyocd"), ("rp2040-pico", "picotool")])
def test_flashing_without_a_probe_fails_cleanly(name, tool, board_images, tmp_path, monkeypatch):
    _fake_tool(tmp_path, tool, NO_PROBE[tool][0] + "\necho flashed > " + str(tmp_path / "wrote"))
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    with pytest.raises(MCUForgeError, match=f"cannot flash {name}: no debug probe or board found by {tool}"):
        flash.flash_image(board_images[name])
    assert not (tmp_path / "wrote").exists()


def test_a_probe_query_that_hangs_times_out(board_images, tmp_path, monkeypatch):
    _fake_tool(tmp_path, "openocd", "exec sleep 60")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setattr(flash, "PROBE_TIMEOUT_S", 1.0)
    with pytest.raises(MCUForgeError, match="openocd found no probe within 1 s"):
        flash.flash_image(board_images["stm32f746g-disco"])


def test_flashing_with_a_probe_runs_the_write_command(board_images, tmp_path, monkeypatch):
    log = tmp_path / "calls"
    _fake_tool(tmp_path, "pyocd", f'echo "$@" >> {log}\nif [ "$1" = list ]; then echo "  #   Probe/Board   Unique ID"; echo "  0   nRF52840-DK   000683"; fi')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    flash.flash_image(board_images["nrf52840dk"])
    calls = log.read_text().splitlines()
    assert calls == ["list --probes", f"flash --target nrf52840 {board_images['nrf52840dk'].hex}"]


def test_st_flash_is_the_fallback_for_the_stm32_board(board_images, tmp_path, monkeypatch):
    log = tmp_path / "calls"
    _fake_tool(tmp_path, "st-info", f'echo "st-info $@" >> {log}\necho "Found 1 stlink programmers"')
    _fake_tool(tmp_path, "st-flash", f'echo "st-flash $@" >> {log}')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    if any(Path(d, "openocd").exists() for d in ("/usr/bin", "/bin")):
        pytest.fail("openocd is installed on this machine: this test needs a machine without it")
    flash.flash_image(board_images["stm32f746g-disco"])
    image = board_images["stm32f746g-disco"]
    assert log.read_text().splitlines() == ["st-info --probe", f"st-flash --reset write {image.bin} 0x08000000"]


def test_a_board_naming_an_unknown_flasher_is_refused(tmp_path, monkeypatch):
    text = (boards.BOARDS_DIR / "nrf52840dk.yaml").read_text().replace("pyocd:", "jlinkexe:")
    (tmp_path / "custom.yaml").write_text(text)
    monkeypatch.setattr(boards, "BOARDS_DIR", tmp_path)
    with pytest.raises(MCUForgeError, match="boards/custom.yaml: flashers.jlinkexe: unknown tool. Allowed: openocd, st-flash, pyocd, picotool"):
        boards.load_board("custom")


def test_cli_flash_without_hardware_prints_one_line_and_exits_2(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"}
    if any(Path(d, "openocd").exists() for d in ("/usr/bin", "/bin")):
        pytest.fail("openocd is installed on this machine: this test needs a machine without it")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mcuforge"), "firmware", "flash", str(HELLO), "--target", "stm32f746g-disco", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: cannot flash stm32f746g-disco: openocd or st-flash is not installed (not on PATH); "
        "install openocd (apt-get install openocd) or stlink-tools (apt-get install stlink-tools)"
    ]
    assert (tmp_path / "hello_world_int8.elf").is_file()


def test_parse_run_reads_every_line_kind():
    text = (
        "MF model kws bytes=100\n"
        "MF input random-seed-0 vectors=2 bytes=3\n"
        "MF arena used=512 size=1024\n"
        "MF output 0 0 INT8 1x4 7f80ff01\n"
        "MF top 0 0 0 yes 127\n"
        "MF cycles 0 1234\n"
        "MF output 1 0 INT16 2 0100ffff\n"
        "MF cycles 1 99\n"
        "MF done\n"
    )
    result = console.parse_run(text)
    assert (result.model, result.input_source, result.arena_used, result.done) == ("kws", "random-seed-0", 512, True)
    assert result.outputs[0][0].tolist() == [[127, -128, -1, 1]]
    assert result.outputs[1][0].tolist() == [1, -1]
    assert result.top == [[(0, "yes", 127)]]
    assert result.cycles == [1234, 99]


@pytest.mark.hardware
@pytest.mark.parametrize("name", REAL_BOARDS)
def test_flash_an_attached_board(name, tmp_path):
    """Opt-in (`pytest -m hardware`): needs the board and its flashing tool attached and installed."""
    image = build.build_image(HELLO, name, out_dir=tmp_path)
    report = flash.flash_image(image)
    assert f"flashed {image.elf.name} to {name}" in report
