"""Each chip stated once (deploy/chips.yaml), read by the deploy targets and the firmware boards alike."""

from __future__ import annotations

import pytest
import yaml

from mcuforge.deploy.targets import CHIPS_FILE, TARGETS_DIR, load_chip, load_target, target_names
from mcuforge.errors import MCUForgeError
from mcuforge.firmware import boards

MEMORY_KEYS = {"cpu", "fpu", "dsp", "flash", "ram", "flash_bytes", "ram_bytes"}


def test_no_board_or_target_file_restates_a_chip_fact():
    files = [*boards.BOARDS_DIR.glob("*.yaml"), *TARGETS_DIR.glob("*.yaml")]
    assert len(files) == len(boards.board_names()) + len(target_names())
    for path in files:
        stated = yaml.safe_load(path.read_text())
        assert "chip" in stated and not MEMORY_KEYS & set(stated), f"{path.name} states {sorted(MEMORY_KEYS & set(stated))}"


@pytest.mark.parametrize("board,target", [("nrf52840dk", "cortex-m4-256k"), ("rp2040-pico", "cortex-m0plus-264k")])
def test_a_board_and_a_target_on_the_same_chip_see_the_same_memory(board, target):
    b, t = boards.load_board(board), load_target(target)
    assert b.chip == t.chip
    assert (b.cpu, b.flash.size, b.ram.size) == (t.cpu, t.flash_bytes, t.ram_bytes)


@pytest.mark.parametrize(
    "name,kernels",
    [("qemu-m3", "portable"), ("rp2040-pico", "portable"), ("qemu-m4", "dsp"), ("qemu-m7", "dsp"), ("qemu-m33", "dsp"), ("qemu-m55", "dsp"), ("nrf52840dk", "dsp"), ("stm32f746g-disco", "dsp")],
)
def test_the_kernel_set_follows_the_chips_dsp_extension(name, kernels):
    # Cortex-M3 and M0+ lack the DSP extension (Armv7-M / Armv6-M); M4, M7, M33 (as on these chips) and M55 have it.
    assert boards.load_board(name).kernels == kernels


def test_an_unknown_chip_is_refused_naming_the_chips_there_are():
    with pytest.raises(MCUForgeError, match=r"boards/x.yaml: chip: unknown chip 'nrf9999'. Allowed: .*nrf52840.*rp2040"):
        load_chip("nrf9999", "boards/x.yaml")


def test_a_board_on_a_chip_class_is_refused(tmp_path, monkeypatch):
    text = (boards.BOARDS_DIR / "qemu-m7.yaml").read_text().replace("chip: mps2-an500", "chip: stm32f7-imxrt1060-class")
    (tmp_path / "custom.yaml").write_text(text)
    monkeypatch.setattr(boards, "BOARDS_DIR", tmp_path)
    with pytest.raises(MCUForgeError, match="boards/custom.yaml: chip: 'stm32f7-imxrt1060-class' is a chip class"):
        boards.load_board("custom")


def test_every_chip_parses():
    for name in yaml.safe_load(CHIPS_FILE.read_text()):
        assert load_chip(name, "test").name == name
