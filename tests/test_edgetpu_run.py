"""Running on the Edge TPU targets, on a host that has no Edge TPU.

What can be proven here: the CPU fallback gives the model's known result
(hello_world: int8 -64 -> 126, from MANIFEST.md), a compiled model falls back
to its uncompiled source, and the USB and Dev Board targets fail fast with a
message naming what is missing. Running on real hardware is opt-in
(`pytest -m hardware` with MCUFORGE_CORAL_HOST set, or a USB Accelerator attached).
"""

import os
import time

import numpy as np
import pytest

from conftest import SHARED
from mcuforge.deploy import edgetpu_devboard, edgetpu_host
from mcuforge.deploy.edgetpu_runner import EDGETPU_CUSTOM_OP
from mcuforge.errors import MCUForgeError

HELLO = SHARED / "models" / "tflite-micro" / "hello_world" / "hello_world_int8.tflite"


@pytest.fixture
def half_pi(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([[-64]], dtype=np.int8))  # x = pi/2 at the input scale (MANIFEST.md)
    return path


def _as_edgetpu_compiled(data: bytes) -> bytes:
    """The model with its first op turned into the Edge TPU custom op, as edgetpu_compiler leaves it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    code = model.operatorCodes[model.subgraphs[0].operators[0].opcodeIndex]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = EDGETPU_CUSTOM_OP.decode()
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_cpu_fallback_gives_the_known_result_with_a_notice(half_pi):
    result = edgetpu_host.run_local(HELLO, input_npy=half_pi)
    assert result.device == "cpu"
    assert "Edge TPU delegate libedgetpu.so.1 not loaded" in result.notice and "on the CPU instead" in result.notice
    assert result.outputs == [[[126]]] and result.output_dtypes == ["int8"]
    assert result.latency_ms > 0


def test_a_compiled_model_falls_back_to_its_source(tmp_path, half_pi):
    compiled = tmp_path / "hello_world_int8_edgetpu.tflite"
    compiled.write_bytes(_as_edgetpu_compiled(HELLO.read_bytes()))
    result = edgetpu_host.run_local(compiled, cpu_model=HELLO, input_npy=half_pi)
    assert result.device == "cpu" and str(HELLO) in result.notice
    assert result.outputs == [[[126]]]
    with pytest.raises(MCUForgeError, match="is compiled for the Edge TPU .* pass --cpu-model"):
        edgetpu_host.run_local(compiled, input_npy=half_pi)


def test_requiring_the_edgetpu_does_not_fall_back(half_pi):
    with pytest.raises(MCUForgeError, match="cannot load the Edge TPU delegate libedgetpu.so.1"):
        edgetpu_host.run_local(HELLO, input_npy=half_pi, require_edgetpu=True)


def test_wrong_input_is_named(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(MCUForgeError, match=r"bad.npy is float32 \[1, 3\]; the model expects int8 \[1, 1\]"):
        edgetpu_host.run_local(HELLO, input_npy=bad)


def _fake_usb_device(sysfs, name, vendor, product):
    device = sysfs / name
    device.mkdir(parents=True)
    (device / "idVendor").write_text(vendor + "\n")
    (device / "idProduct").write_text(product + "\n")


def test_usb_accelerator_detection(tmp_path):
    sysfs = tmp_path / "usb"
    _fake_usb_device(sysfs, "1-1", "1d6b", "0002")  # a root hub
    assert edgetpu_host.usb_accelerators(sysfs) == []
    _fake_usb_device(sysfs, "2-1", "1a6e", "089a")  # an accelerator before its firmware is loaded
    _fake_usb_device(sysfs, "2-2", "18d1", "9302")  # and one after
    assert edgetpu_host.usb_accelerators(sysfs) == ["2-1", "2-2"]


def test_coral_usb_without_library_or_device_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(edgetpu_host, "libedgetpu_path", lambda: None)
    (tmp_path / "usb").mkdir()
    with pytest.raises(MCUForgeError) as info:
        edgetpu_host.run_usb(HELLO, sysfs=tmp_path / "usb")
    message = str(info.value)
    assert "libedgetpu is not installed" in message and "libedgetpu1-std" in message
    assert "no Coral USB Accelerator is attached" in message


def test_devboard_over_ssh_fails_fast_when_the_board_is_unreachable():
    start = time.monotonic()
    with pytest.raises(MCUForgeError, match="ssh to 127.0.0.1 failed: .*(refused|closed|reset)"):
        edgetpu_devboard.run_devboard(HELLO, "127.0.0.1", port=1, connect_timeout=5)
    assert time.monotonic() - start < 30


FAKE_SSH = """#!/bin/bash
# Test stand-in for ssh: runs the remote command on this host, with this venv's python as the board's python3.
while [ $# -gt 0 ]; do case "$1" in -o|-p) shift 2;; *) break;; esac; done
echo "$1" >> "$FAKE_SSH_HOSTS"
shift
if [ "$1" = python3 ]; then shift; exec "$FAKE_BOARD_PYTHON" "$@"; fi
exec "$@"
"""
FAKE_SCP = """#!/bin/bash
# Test stand-in for scp: copies HOST:DIR/ targets into DIR on this host.
while [ $# -gt 0 ]; do case "$1" in -o|-P) shift 2;; *) break;; esac; done
args=("$@"); dest="${args[-1]}"; unset 'args[-1]'
cp "${args[@]}" "${dest#*:}"
"""


@pytest.fixture
def fake_board(tmp_path, monkeypatch):
    """ssh and scp stand-ins on PATH that treat this host as the board; returns (remote dir, hosts log)."""
    import sys

    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, text in (("ssh", FAKE_SSH), ("scp", FAKE_SCP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_BOARD_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_SSH_HOSTS", str(tmp_path / "hosts.log"))
    return tmp_path / "board", tmp_path / "hosts.log"


def test_devboard_copies_model_input_and_runner_then_runs_them(fake_board, tmp_path, half_pi):
    remote_dir, hosts = fake_board
    compiled = tmp_path / "hello_world_int8_edgetpu.tflite"
    compiled.write_bytes(_as_edgetpu_compiled(HELLO.read_bytes()))
    result = edgetpu_devboard.run_devboard(compiled, "mendel@board", cpu_model=HELLO, input_npy=half_pi, remote_dir=str(remote_dir))
    assert result.device == "cpu" and result.outputs == [[[126]]]
    assert str(remote_dir / HELLO.name) in result.notice  # the board ran the copies, not the local files
    assert sorted(p.name for p in remote_dir.iterdir()) == sorted([compiled.name, HELLO.name, half_pi.name, "edgetpu_runner.py"])
    assert set(hosts.read_text().split()) == {"mendel@board"}
    with pytest.raises(MCUForgeError, match="runner failed on mendel@board: .* pass --cpu-model"):
        edgetpu_devboard.run_devboard(compiled, "mendel@board", input_npy=half_pi, remote_dir=str(remote_dir))


def test_devboard_needs_a_host_for_ssh_and_the_tool_for_mdt(tmp_path, monkeypatch):
    with pytest.raises(MCUForgeError, match="--host is required"):
        edgetpu_devboard.run_devboard(HELLO, None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MCUForgeError, match="mdt not found on PATH: pip install mendel-development-tool"):
        edgetpu_devboard.run_devboard(HELLO, None, via="mdt")
    with pytest.raises(MCUForgeError, match="ssh, scp not found on PATH"):
        edgetpu_devboard.run_devboard(HELLO, "mendel@192.0.2.1")


@pytest.mark.hardware
def test_devboard_runs_the_model():
    host = os.environ.get("MCUFORGE_CORAL_HOST")
    if not host:
        pytest.fail("set MCUFORGE_CORAL_HOST=mendel@ADDRESS to run the Dev Board test")
    result = edgetpu_devboard.run_devboard(HELLO, host)
    assert result.outputs and result.device in ("edgetpu", "cpu")


@pytest.mark.hardware
def test_usb_accelerator_runs_the_model(half_pi):
    result = edgetpu_host.run_usb(HELLO, input_npy=half_pi)
    assert result.device == "edgetpu" and result.notice is None
    assert result.outputs == [[[126]]]
