"""bench/engine_icount.py --json on hello_world: the figures the issue asks for, checked against independent measures.

The model's facts come from ../shared/MANIFEST.md (2,704 bytes, three FULLY_CONNECTED
layers 1 -> 16 -> 16 -> 1) and from the host engine's own prepare, not from the bench.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcuforge.firmware.engine import Engine
from mcuforge.firmware.prepared import prepared_image

REPO = Path(__file__).resolve().parent.parent
HELLO_WORLD = REPO.parent / "shared" / "models" / "tflite-micro" / "hello_world" / "hello_world_int8.tflite"
BENCH = REPO / "bench" / "engine_icount.py"


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "engine.json"
    subprocess.run([sys.executable, str(BENCH), "--models", str(HELLO_WORLD), "--json", str(out)], check=True,
                   capture_output=True, text=True)
    figures = json.loads(out.read_text())
    assert figures["target"] == "qemu-m4"
    (only,) = figures["models"]
    return only


def test_json_fields_agree_with_independent_measures(record):
    model = HELLO_WORLD.read_bytes()
    assert record["macs"] == 1 * 16 + 16 * 16 + 16 * 1  # FULLY_CONNECTED 1 -> 16 -> 16 -> 1 (MANIFEST)
    assert record["tflite_bytes"] == 2704  # MANIFEST
    assert record["interpreter"]["flash_model_bytes"] == 2704
    image = prepared_image(model, "dsp")
    prepared = record["prepared"]
    assert prepared["flash_model_bytes"] == len(image.data)
    assert prepared["arena_bytes"] == image.arena_bytes  # the device reports the arena the host's prepare planned
    for path in ("prepared", "interpreter"):
        row = record[path]
        # The portable kernels do at most one MAC per instruction, SMLAD two.
        assert row["portable_instructions"] >= record["macs"]
        assert row["dsp_instructions"] >= record["macs"] // 2
        assert 0 < row["code_bytes"] < 64 * 1024 and 0 < row["portable_code_bytes"] < 64 * 1024
        assert row["soft_double_linked"] is False
    # The interpreter parses the flatbuffer, plans and prepares at boot: more code and per-invoke bookkeeping.
    assert record["interpreter"]["code_bytes"] > prepared["code_bytes"]
    assert record["interpreter"]["arena_bytes"] > prepared["arena_bytes"]
    # The same interpreter on the 64-bit host needs at least the device's arena (pointers are wider there).
    with Engine(model, kernels="dsp") as engine:
        assert 0 < record["interpreter"]["arena_bytes"] <= engine.arena_used


def test_missing_model_is_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--models", str(tmp_path / "none.tflite")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "none.tflite" in proc.stderr and len(proc.stderr.splitlines()) == 1
