"""The deploy commands as users run them: output on success, one-line errors with exit 2, nothing half-written."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from mcuforge.deploy import export as export_module
from mcuforge.deploy.targets import Target
from mcuforge.errors import MCUForgeError

MODELS = SHARED / "models" / "tflite-micro"
HELLO = MODELS / "hello_world" / "hello_world_int8.tflite"
MCUFORGE = Path(sys.executable).parent / "mcuforge"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(MCUFORGE), *map(str, args)], cwd=cwd, capture_output=True, text=True, env={**os.environ})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_emulate_prints_and_writes_the_raw_output(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[-64], [-128]], dtype=np.int8))
    result = run("emulate", HELLO, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "y.npy").astype(np.int32)[0, 0] == 126  # MANIFEST
    # 126 dequantizes to 0.0082909567 * (126 - 5) = 1.0032
    assert result.stdout.splitlines()[0] == "0: [1.0032]"


def test_emulate_shows_top_k_with_labels(tmp_path):
    model = tmp_path / "person.tflite"
    shutil.copy(MODELS / "person_detection" / "person_detect.tflite", model)
    (tmp_path / "labels.txt").write_text("not-person\nperson\n")
    raw = (MODELS / "person_detection" / "testdata" / "person.bmp").read_bytes()
    pixels = np.frombuffer(raw[1078 : 1078 + 96 * 96], np.uint8).reshape(96, 96)[::-1].view(np.int8)
    np.save(tmp_path / "x.npy", pixels)
    result = run("emulate", model, "--input", tmp_path / "x.npy", "--top", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["0: person 0.9414"]  # (113 + 128) / 256


def test_golden_record_and_verify(tmp_path):
    assert run("golden", "record", HELLO, "--dir", tmp_path / "g", "--count", "3", cwd=tmp_path).returncode == 0
    verified = run("golden", "verify", HELLO, "--dir", tmp_path / "g", cwd=tmp_path)
    assert verified.returncode == 0 and "3 samples match" in verified.stdout
    outputs = np.load(tmp_path / "g" / "output_0.npy")
    outputs[2, 0] ^= 1
    np.save(tmp_path / "g" / "output_0.npy", outputs)
    assert_one_line_error(run("golden", "verify", HELLO, "--dir", tmp_path / "g", cwd=tmp_path), "input 2 output 0 element 0")


def test_report_writes_markdown_and_json(tmp_path):
    result = run("report", HELLO, "--target", "cortex-m4-256k", "--out", tmp_path / "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MACs per inference: 288" in (tmp_path / "r" / "hello_world_int8_report.md").read_text()
    assert (tmp_path / "r" / "hello_world_int8_report.json").is_file()


def test_export_writes_the_source_set(tmp_path):
    result = run("export", HELLO, "--out", tmp_path / "src", "--name", "sine", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == [
        "README.md", "sine_model_data.cc", "sine_model_data.h", "sine_model_settings.h", "sine_op_resolver.h"
    ]


def test_corrupt_model_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(HELLO.read_bytes()[:1500])
    assert_one_line_error(run("export", bad, "--out", tmp_path / "src", cwd=tmp_path), "bad.tflite is truncated or corrupt")
    assert not (tmp_path / "src").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tflite"]


def test_failed_export_keeps_the_last_good_one(tmp_path):
    assert run("export", HELLO, "--out", tmp_path / "src", "--name", "sine", cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    (tmp_path / "text.tflite").write_text("hello")
    assert_one_line_error(run("export", tmp_path / "text.tflite", "--out", tmp_path / "src", cwd=tmp_path), "not a TFLite model")
    assert {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()} == before


def test_wrong_input_shape_and_dtype(tmp_path):
    np.save(tmp_path / "shape.npy", np.zeros((2, 3), np.int8))
    np.save(tmp_path / "dtype.npy", np.zeros((2, 1), np.int32))
    assert_one_line_error(
        run("emulate", HELLO, "--input", tmp_path / "shape.npy", "--output", tmp_path / "y.npy", cwd=tmp_path),
        "input has shape [2, 3]", "[1, 1]",
    )
    assert_one_line_error(run("emulate", HELLO, "--input", tmp_path / "dtype.npy", cwd=tmp_path), "dtype int32", "is int8")
    assert not (tmp_path / "y.npy").exists()


def test_not_npy_input(tmp_path):
    (tmp_path / "x.npy").write_text("1,2,3")
    assert_one_line_error(run("emulate", HELLO, "--input", tmp_path / "x.npy", cwd=tmp_path), "not a numpy .npy array")


def test_unknown_target(tmp_path):
    assert_one_line_error(run("report", HELLO, "--target", "esp32", "--out", tmp_path, cwd=tmp_path), "unknown target 'esp32'", "cortex-m4-256k")
    assert list(tmp_path.iterdir()) == []


def test_float_model_where_int8_is_required(tmp_path):
    result = run("report", MODELS / "magic_wand" / "magic_wand.tflite", "--target", "cortex-m55-ethos-u55", "--out", tmp_path, cwd=tmp_path)
    assert_one_line_error(result, "is not a full-integer model", "ethos-u55")
    assert list(tmp_path.iterdir()) == []


def test_model_too_big_for_target(tmp_path):
    import tf_keras as keras

    from mcuforge.deploy.convert import convert_model

    keras.utils.set_random_seed(0)
    # 1200 x 1000 int8 weights: about 1.2 MB of flash, over cortex-m4-256k's 1 MB (and under cortex-m7-512k's 2 MB).
    model = keras.Sequential([keras.Input((1200,)), keras.layers.Dense(1000)])
    sample = np.random.default_rng(0).normal(size=(8, 1200)).astype(np.float32)
    big = tmp_path / "big.tflite"
    big.write_bytes(convert_model(model, sample))
    size = big.stat().st_size
    assert run("report", big, "--target", "cortex-m7-512k", "--out", tmp_path / "m7", cwd=tmp_path).returncode == 0
    result = run("report", big, "--target", "cortex-m4-256k", "--out", tmp_path / "m4", cwd=tmp_path)
    assert_one_line_error(result, f"flash: the model needs {size} bytes, cortex-m4-256k has 1048576")


def test_export_refuses_a_model_over_the_target_before_writing(tmp_path, monkeypatch):
    person = MODELS / "person_detection" / "person_detect.tflite"  # 300,568 B of flash
    assert run("export", person, "--out", tmp_path / "ok", "--target", "cortex-m0plus-264k", cwd=tmp_path).returncode == 0
    # A target with less RAM than the person detector's activations (its largest layer alone moves 55 KB).
    tiny = Target(name="tiny", cpu="cortex-m0plus", flash_bytes=2 * 1024 * 1024, ram_bytes=32 * 1024)
    monkeypatch.setattr(export_module, "load_target", lambda name: tiny)
    with pytest.raises(MCUForgeError, match=r"RAM: the tensor arena needs \d+ bytes, tiny has 32768") as error:
        export_module.export(person, tmp_path / "no", "person", target="tiny")
    assert "flash" not in str(error.value)
    assert not (tmp_path / "no").exists()
