"""Ethos-U through the real Vela compiler, on the upstream TFLM models in shared/.

Oracles: Vela's own summary CSV read here with the csv module, MACs counted by
hand (hello_world: 1x16 + 16x16 + 16x1 = 288) or by deploy.report's independent
count, the optimized model's bytes for the C array, and the ops Vela must leave
to the CPU in a float model.
"""

import csv
import ctypes
import json
import shutil
from pathlib import Path

import pytest

from conftest import SHARED
from mcuforge.deploy import npu
from mcuforge.deploy.report import build_report, layer_rows, write_report
from mcuforge.deploy.tflite_model import read_tflite
from mcuforge.errors import MCUForgeError
from mcuforge.hostbuild import build_shared_library

MODELS = SHARED / "models" / "tflite-micro"


@pytest.fixture
def hello(tmp_path):
    return shutil.copy(MODELS / "hello_world" / "hello_world_int8.tflite", tmp_path)


@pytest.fixture(scope="module")
def hello_u55(tmp_path_factory):
    root = tmp_path_factory.mktemp("hello_u55")
    model = shutil.copy(MODELS / "hello_world" / "hello_world_int8.tflite", root)
    return npu.compile_for_npu(model, root / "out", "ethos-u55-128")


def _summary_row(estimate):
    (summary,) = (p for p in Path(estimate.optimized_model).parent.glob("*_summary_*.csv"))
    with open(summary) as fh:
        return next(csv.DictReader(fh))


def test_hello_world_runs_entirely_on_the_npu(hello_u55):
    est = hello_u55
    assert est.accelerator == "ethos-u55-128"
    assert est.macs == 288  # 1*16 + 16*16 + 16*1, by hand
    assert (est.cpu_ops, est.npu_command_streams, est.cpu_operators) == (0, 1, [])
    optimized = read_tflite(est.optimized_model)
    assert optimized.op_names == ("ethos-u",)  # every FULLY_CONNECTED went into Vela's custom op
    row = _summary_row(est)
    assert est.npu_cycles == int(row["cycles_npu"]) > 0
    assert est.total_cycles == int(row["cycles_total"]) >= est.npu_cycles
    assert est.sram_bytes == round(float(row["sram_memory_used"]) * 1024)
    assert est.off_chip_flash_bytes == round(float(row["off_chip_flash_memory_used"]) * 1024) > 0
    assert est.clock_hz == 500e6  # Vela's Ethos_U55_High_End_Embedded system


def test_person_detect_estimates_are_vela_figures(tmp_path):
    model = Path(shutil.copy(MODELS / "person_detection" / "person_detect.tflite", tmp_path))
    est = npu.compile_for_npu(model, tmp_path / "out", "ethos-u55-128")
    row = _summary_row(est)
    assert est.cpu_ops == 0 and est.npu_command_streams == 1
    assert est.npu_cycles == int(row["cycles_npu"]) > 0
    assert est.encoded_weight_bytes == int(row["total_npu_encoded_weights"])
    # Vela and deploy.report count MACs independently; Vela adds a few for pooling and softmax.
    ours = sum(r.macs for r in layer_rows(read_tflite(model)))
    assert abs(est.macs - ours) / ours < 1e-3
    # Weights must live in flash and the feature maps in SRAM: a 96x96 int8 input alone is 9,216 B.
    assert est.sram_bytes >= 96 * 96
    assert est.off_chip_flash_bytes >= est.encoded_weight_bytes
    assert (tmp_path / "out" / "person_detect_vela.json").is_file()
    assert npu.NpuEstimate.from_json(json.loads((tmp_path / "out" / "person_detect_vela.json").read_text())) == est
    engine = build_report(model)
    markdown, _ = write_report(engine, tmp_path / "out", sections=(npu.comparison_markdown(engine, est),))
    text = markdown.read_text()
    assert f"| MACs per inference | {ours:,} | {int(row['nn_macs']):,} |" in text
    assert f"| NPU cycles | - | {int(row['cycles_npu']):,} |" in text
    assert f"| flash (B) | {model.stat().st_size:,} (model) | {est.off_chip_flash_bytes:,} (Vela" in text


def test_float_model_is_left_to_the_cpu_with_reasons(tmp_path):
    model = shutil.copy(MODELS / "magic_wand" / "magic_wand.tflite", tmp_path)
    est = npu.compile_for_npu(model, tmp_path / "out")
    ops = read_tflite(model).main.operators
    assert est.npu_ops == 0 and est.npu_command_streams == 0
    assert est.cpu_ops == len(ops) == 7
    assert "SOFTMAX" in {op.op for op in est.cpu_operators}
    assert all("Float32" in op.reason for op in est.cpu_operators)
    assert est.inferences_per_second == 0.0  # Vela writes nan when nothing runs on the NPU


def test_larger_npu_configurations_take_fewer_cycles(tmp_path):
    model = shutil.copy(MODELS / "micro_speech" / "micro_speech_quantized.tflite", tmp_path)
    small = npu.compile_for_npu(model, tmp_path / "u55_32", "ethos-u55-32")
    large = npu.compile_for_npu(model, tmp_path / "u55_256", "ethos-u55-256")
    assert small.macs == large.macs
    assert small.npu_cycles > large.npu_cycles


def test_c_array_holds_the_optimized_model_and_compiles_strict_c99(hello_u55, tmp_path):
    source, header = npu.export_c_array(hello_u55, tmp_path, "hello", board="corstone-300")
    assert source.name == "hello_vela.c" and header.name == "hello_vela.h"
    library = build_shared_library("hello_vela_test", [source], [tmp_path])
    lib = ctypes.CDLL(str(library))
    length = ctypes.c_uint.in_dll(lib, "g_hello_vela_model_data_len").value
    data = bytes((ctypes.c_ubyte * length).in_dll(lib, "g_hello_vela_model_data"))
    assert data == Path(hello_u55.optimized_model).read_bytes()
    assert ctypes.addressof(ctypes.c_ubyte.in_dll(lib, "g_hello_vela_model_data")) % 16 == 0


def test_board_must_carry_the_accelerator(hello, tmp_path):
    u65 = npu.compile_for_npu(hello, tmp_path / "u65", "ethos-u65-256")
    npu.export_c_array(u65, tmp_path, "hello", board="corstone-310")
    with pytest.raises(MCUForgeError, match="corstone-300 carries ethos-u55, not ethos-u65-256"):
        npu.export_c_array(u65, tmp_path, "hello", board="corstone-300")
    with pytest.raises(MCUForgeError, match="unknown board 'mps2'"):
        npu.export_c_array(u65, tmp_path, "hello", board="mps2")


def test_bad_inputs_are_named(hello, tmp_path):
    with pytest.raises(MCUForgeError, match="unknown accelerator 'ethos-u55-100'"):
        npu.compile_for_npu(hello, tmp_path, "ethos-u55-100")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(MCUForgeError, match="corrupt.tflite is not a TFLite model"):
        npu.compile_for_npu(corrupt, tmp_path / "out")
    assert not (tmp_path / "out" / "corrupt_vela.tflite").exists()


def test_report_puts_npu_figures_beside_the_engine(hello_u55, tmp_path):
    engine = build_report(hello_u55.model)
    path, _ = write_report(engine, tmp_path, sections=(npu.comparison_markdown(engine, hello_u55),))
    text = path.read_text()
    assert path.name == "hello_world_int8_report.md"
    assert text.startswith(engine.markdown())
    row = next(line for line in text.splitlines() if line.startswith("| MACs per inference"))
    assert row == "| MACs per inference | 288 | 288 |"
    assert f"NPU cycles | - | {hello_u55.npu_cycles:,} |" in text
    assert f"| working RAM (B) | {engine.arena_measured_bytes:,} (TFLM arena)" in text


def test_an_op_the_npu_lacks_stays_on_the_cpu_beside_the_npu_op(tmp_path):
    import numpy as np
    import tensorflow as tf

    from test_edgetpu_check import convert

    weights = tf.constant(np.random.default_rng(1).normal(size=(1, 1, 3, 4)).astype(np.float32))

    @tf.function
    def net(x):
        return tf.nn.conv2d(tf.math.reduce_prod(x, axis=2, keepdims=True), weights, 1, "VALID")

    model = tmp_path / "prod_conv.tflite"
    model.write_bytes(convert(net, [[1, 4, 4, 3]]))
    assert [op.opcode for op in read_tflite(model).main.operators] == ["REDUCE_PROD", "CONV_2D"]
    est = npu.compile_for_npu(model, tmp_path / "out")
    # REDUCE_PROD is not in Vela's supported-operator list: TFLM runs it on the CPU, then the NPU runs the conv.
    assert (est.cpu_ops, est.npu_command_streams) == (1, 1)
    assert [op.opcode for op in read_tflite(est.optimized_model).main.operators] == ["REDUCE_PROD", "ethos-u"]
    assert [(op.op, op.reason) for op in est.cpu_operators] == [("REDUCE_PROD", "Unsupported opType")]
    assert "  - CPU: REDUCE_PROD (" in est.markdown()


def test_a_summary_without_vela_s_figures_is_named(hello_u55):
    (summary,) = Path(hello_u55.optimized_model).parent.glob("*_summary_*.csv")
    rows = list(csv.reader(summary.read_text().splitlines()))
    column = rows[0].index("cycles_npu")
    trimmed = "\n".join(",".join(r[:column] + r[column + 1 :]) for r in rows)
    with pytest.raises(MCUForgeError, match="has no number 'cycles_npu': this Vela version is not supported"):
        npu.parse_vela_output(trimmed, "NPU operators = 3 (100.0%)", "m.tflite", Path(hello_u55.optimized_model), "x")
    with pytest.raises(MCUForgeError, match="no 'NPU operators =' line"):
        npu.parse_vela_output(summary.read_text(), "", "m.tflite", Path(hello_u55.optimized_model), "x")
