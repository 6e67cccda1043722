"""The engine's C API and CLI: names agree with the TFLite schema, bad input gives status codes, commands work."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest
from oplib import edited, run_tflm

from mcuforge.errors import MCUForgeError
from mcuforge.firmware import engine as eng

MODELS = Path(__file__).resolve().parents[3] / "shared" / "models" / "tflite-micro"
HELLO = MODELS / "hello_world" / "hello_world_int8.tflite"
SPEECH = MODELS / "micro_speech" / "micro_speech_quantized.tflite"


def test_op_and_type_names_match_the_schema():
    from ai_edge_litert import schema_py_generated as schema

    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    assert [eng.op_name(code) for code in sorted(ops)] == [ops[code] for code in sorted(ops)]
    assert [eng.type_name(code) for code in sorted(types)] == [types[code] for code in sorted(types)]
    assert eng.op_name(max(ops) + 1) == "UNKNOWN" and eng.op_name(-1) == "UNKNOWN"


def test_status_names_match_the_header():
    import re

    header = (eng.RUNTIME_DIR / "mf_engine.h").read_text()
    block = header[header.index("typedef enum mf_status {") : header.index("} mf_status;")]
    statuses = {int(v): name for name, v in re.findall(r"^\s+(MF_\w+) = (\d+),", block, re.M) if name != "MF_STATUS_COUNT"}
    assert [eng.status_name(code) for code in sorted(statuses)] == [statuses[code] for code in sorted(statuses)]
    assert statuses[eng.MF_OK] == "MF_OK" and statuses[eng.MF_ERR_ARENA_TOO_SMALL] == "MF_ERR_ARENA_TOO_SMALL"


@pytest.mark.parametrize("cut", [0, 3, 8, 100, 1000, 2000])
def test_truncated_model_is_a_bad_model(cut):
    with pytest.raises(eng.EngineError) as caught:
        eng.Engine(HELLO.read_bytes()[:cut])
    assert caught.value.status == "MF_ERR_BAD_MODEL"


def test_wrong_schema_version_is_a_bad_model():
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(HELLO.read_bytes(), 0)
    model.version = 2
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(eng.EngineError) as caught:
        eng.Engine(bytes(builder.Output()))
    assert caught.value.status == "MF_ERR_BAD_MODEL"


def test_misaligned_model_pointer_is_a_bad_argument():
    lib = eng.library()
    data = HELLO.read_bytes()
    buffer = ctypes.create_string_buffer(len(data) + 16)
    start = ctypes.addressof(buffer) + (-ctypes.addressof(buffer)) % 16 + 1
    ctypes.memmove(start, data, len(data))
    arena = (ctypes.c_uint8 * 4096)()
    handle = ctypes.c_void_p()
    status = lib.mf_load(start, len(data), ctypes.addressof(arena), 4096, ctypes.byref(handle), None)
    assert eng.status_name(status) == "MF_ERR_BAD_ARGUMENT"


def test_wrong_input_is_refused():
    with eng.Engine(HELLO.read_bytes()) as engine:
        with pytest.raises(MCUForgeError, match="int8"):
            engine.invoke([np.zeros((1, 1), dtype=np.float32)])


def test_run_model_batches_and_quantizes_floats(tmp_path):
    """Float input is quantized with the input scale/zero point; each sample runs alone; Y.npy is written."""
    scale, zero_point = 0.024480116, -128  # hello_world's input quantization (MANIFEST.md)
    x = np.array([[0.0], [np.pi / 2], [3.0]], dtype=np.float32)
    out = tmp_path / "y.npy"
    result = eng.run_model(HELLO, x, out)
    codes = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)
    expected = np.concatenate([run_tflm(HELLO.read_bytes(), [c.reshape(1, 1)])[0] for c in codes])
    np.testing.assert_array_equal(np.load(out), expected)
    assert result.outputs.shape == (3, 1)


def test_cli_run_and_stats(tmp_path):
    from typer.testing import CliRunner

    from mcuforge.cli import app

    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(2, 1960)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    runner = CliRunner()
    result = runner.invoke(app, ["engine", "run", str(SPEECH), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")])
    assert result.exit_code == 0, result.output
    y = np.load(tmp_path / "y.npy")
    for i in range(2):
        np.testing.assert_array_equal(y[i], run_tflm(SPEECH.read_bytes(), [x[i : i + 1]])[0][0])
    result = runner.invoke(app, ["engine", "stats", str(SPEECH)])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["ops"] == ["RESHAPE", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    assert stats["tflm_arena_head"] == 5968  # TFLM's activation bytes, same on 32 and 64 bits
    assert stats["tflm_arena_total"] == stats["tflm_arena_head"] + stats["tflm_arena_tail"]
    assert 0 < stats["engine_arena"] <= 0.8 * 6788


def test_cli_unsupported_model_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    lstm = MODELS / "mnist_lstm" / "trained_lstm_int8.tflite"
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), dtype=np.float32))
    result = subprocess.run(
        [sys.executable, "-c", "from mcuforge.cli import main; main()", "engine", "run", str(lstm), "--input", str(tmp_path / "x.npy")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "UNIDIRECTIONAL_SEQUENCE_LSTM" in lines[0]


def test_reshape_output_shares_the_input_buffer():
    """RESHAPE is an alias: mf_output's data pointer is mf_input's, and the bytes come through unchanged."""
    import tensorflow as tf
    from oplib import convert

    rng = np.random.default_rng(2)
    model = convert(lambda x: tf.reshape(x, (1, 24)), [(1, 4, 6)], rng)
    lib = eng.library()
    buffer = ctypes.create_string_buffer(len(model) + 16)
    start = ctypes.addressof(buffer) + (-ctypes.addressof(buffer)) % 16
    ctypes.memmove(start, model, len(model))
    arena = (ctypes.c_uint8 * 4096)()
    handle = ctypes.c_void_p()
    assert lib.mf_load(start, len(model), ctypes.addressof(arena), 4096, ctypes.byref(handle), None) == eng.MF_OK
    source, target = eng._TensorInfo(), eng._TensorInfo()
    assert lib.mf_input(handle, 0, ctypes.byref(source)) == eng.MF_OK
    assert lib.mf_output(handle, 0, ctypes.byref(target)) == eng.MF_OK
    assert source.data == target.data and source.bytes == target.bytes == 24
    values = bytes(range(24))
    ctypes.memmove(source.data, values, 24)
    assert lib.mf_invoke(handle) == eng.MF_OK
    assert ctypes.string_at(target.data, 24) == values


def test_unsupported_type_is_refused_naming_the_type():
    """hello_world_float with its activations retyped int16: no kernel runs int16 FULLY_CONNECTED."""

    def to_int16(model):
        for tensor in model.subgraphs[0].tensors:
            if model.buffers[tensor.buffer].data is None:
                tensor.type = 7  # INT16

    with pytest.raises(eng.EngineError) as caught:
        eng.Engine(edited((MODELS / "hello_world" / "hello_world_float.tflite").read_bytes(), to_int16))
    assert caught.value.status == "MF_ERR_UNSUPPORTED_TYPE" and caught.value.fault_name == "INT16"


def test_arena_grows_to_what_the_engine_asks_for(monkeypatch):
    """From a 64-byte first try, the binding follows the engine's successive arena_needed to the full plan."""
    model = (MODELS / "person_detection" / "person_detect.tflite").read_bytes()
    with eng.Engine(model) as engine:
        expected = engine.arena_used
    monkeypatch.setattr(eng, "DEFAULT_ARENA_BYTES", 64)
    with eng.Engine(model) as engine:
        assert engine.arena_used == expected
