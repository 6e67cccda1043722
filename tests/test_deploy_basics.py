"""deploy/ building blocks: C arrays, the .tflite reader, targets, input preparation, doctests."""

import doctest
import importlib
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED
from mcuforge.deploy.carray import array_declaration, array_definition
from mcuforge.deploy.targets import Fit, load_target, target_names
from mcuforge.deploy.tflite_model import NUMPY_DTYPES, parse_tflite, read_tflite, tensor_type_names
from mcuforge.deploy.tflm import prepare_input
from mcuforge.errors import MCUForgeError

HELLO = SHARED / "models" / "tflite-micro" / "hello_world" / "hello_world_int8.tflite"


@pytest.mark.parametrize("module", ["carray", "export", "emulate", "evaluate"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(f"mcuforge.deploy.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_c99_array_compiles_strictly_and_round_trips(tmp_path):
    data = bytes(np.random.default_rng(0).integers(0, 256, 1001, dtype=np.uint8))  # not a multiple of 12
    source = tmp_path / "blob.c"
    source.write_text(
        "#include <stdint.h>\n#include <stdio.h>\n"
        f"{array_declaration('blob')}\n{array_definition('blob', data, 'c99')}\n"
        "int main(int argc, char **argv) {\n"
        "  FILE *out;\n"
        "  if (argc != 2 || ((uintptr_t)g_blob_model_data % 16) != 0) return 3;\n"
        "  out = fopen(argv[1], \"wb\");\n"
        "  if (out == NULL) return 4;\n"
        "  if (fwrite(g_blob_model_data, 1, g_blob_model_data_len, out) != g_blob_model_data_len) return 1;\n"
        "  return fclose(out) == 0 ? 0 : 5;\n"
        "}\n"
    )
    program = tmp_path / "blob"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", str(source), "-o", str(program)], check=True)
    subprocess.run([str(program), str(tmp_path / "back.bin")], check=True)
    assert (tmp_path / "back.bin").read_bytes() == data


def test_array_text_is_deterministic_12_bytes_a_line():
    text = array_definition("m", bytes(range(25)))
    lines = text.splitlines()
    assert lines[1].count("0x") == 12 and lines[2].count("0x") == 12 and lines[3].count("0x") == 1
    assert text == array_definition("m", bytes(range(25)))
    assert lines[-1] == "const unsigned int g_m_model_data_len = 25;"


@pytest.mark.parametrize("name", ["", "9x", "a-b", "a b"])
def test_array_rejects_bad_names(name):
    with pytest.raises(MCUForgeError, match="not a C identifier"):
        array_definition(name, b"\x00")


def test_reader_on_hello_world_matches_the_manifest():
    model = read_tflite(HELLO)
    graph = model.main
    assert model.size == 2704 and model.op_names == ("FULLY_CONNECTED",)
    assert [op.opcode for op in graph.operators] == ["FULLY_CONNECTED"] * 3
    (inp,), (out,) = graph.input_tensors, graph.output_tensors
    assert (inp.dtype, inp.shape, inp.quantization.zero_point) == ("int8", (1, 1), -128)
    assert np.float32(inp.quantization.scale) == np.float32(0.024480116)
    assert (out.dtype, out.shape, out.quantization.zero_point) == ("int8", (1, 1), 5)
    assert model.is_fully_integer
    weights = graph.tensors[graph.operators[0].inputs[1]]
    assert weights.is_constant and weights.shape == (16, 1) and weights.array().dtype == np.int8


def test_reader_sees_per_channel_quantization():
    model = read_tflite(SHARED / "models" / "tflite-micro" / "person_detection" / "person_detect.tflite")
    conv = next(op for op in model.main.operators if op.opcode == "CONV_2D")
    filters = model.main.tensors[conv.inputs[1]]
    assert filters.quantization.per_channel and len(filters.quantization.scales) == filters.shape[0]
    assert filters.quantization.quantized_dimension == 0


def test_float_model_is_not_fully_integer():
    model = read_tflite(SHARED / "models" / "tflite-micro" / "magic_wand" / "magic_wand.tflite")
    assert not model.is_fully_integer
    assert model.float_ops == ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "SOFTMAX")
    assert read_tflite(HELLO).float_ops == ()
    with pytest.raises(MCUForgeError, match="magic_wand.tflite is not a full-integer model .* but the engine runs int8 only"):
        model.require_integer("the engine")


@pytest.mark.parametrize("cut", [0, 7, 100, 1000, 2000, 2703])
def test_truncated_model_is_rejected(cut):
    with pytest.raises(MCUForgeError, match=r"hello\.tflite (is truncated or corrupt|is not a TFLite model)"):
        parse_tflite(HELLO.read_bytes()[:cut], "hello.tflite")


def test_non_tflite_file_is_rejected(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_text("just some text, not a flatbuffer")
    with pytest.raises(MCUForgeError, match=r"notes\.tflite is not a TFLite model: expected file identifier TFL3"):
        read_tflite(path)


def test_missing_model_is_named(tmp_path):
    with pytest.raises(MCUForgeError, match="model file not found"):
        read_tflite(tmp_path / "absent.tflite")


def test_dtype_table_agrees_with_tensorflow_and_the_schema():
    import tensorflow as tf

    # schema.fbs: FLOAT32 = 0, INT32 = 2, UINT8 = 3, INT16 = 7, INT8 = 9
    assert {c: tensor_type_names()[c] for c in (0, 2, 3, 7, 9)} == {0: "float32", 2: "int32", 3: "uint8", 7: "int16", 9: "int8"}
    assert set(NUMPY_DTYPES) <= set(tensor_type_names().values())
    for name, numpy_type in NUMPY_DTYPES.items():
        assert tf.as_dtype(name).as_numpy_dtype == numpy_type, name


def test_targets_from_the_issue_exist_with_their_budgets():
    assert {"cortex-m4-256k", "cortex-m7-512k", "cortex-m0plus-264k", "cortex-m55-ethos-u55", "coral-edgetpu"} <= set(target_names())
    m4 = load_target("cortex-m4-256k")
    assert (m4.flash_bytes, m4.ram_bytes) == (1024 * 1024, 256 * 1024)
    rp2040 = load_target("cortex-m0plus-264k")
    assert (rp2040.flash_bytes, rp2040.ram_bytes) == (2 * 1024 * 1024, 264 * 1024)


def test_fit_check_names_both_numbers():
    target = load_target("cortex-m4-256k")
    Fit(target, 1024 * 1024, 256 * 1024).check()  # exactly the budget fits
    with pytest.raises(MCUForgeError, match=r"flash: the model needs 1048577 bytes, cortex-m4-256k has 1048576"):
        Fit(target, 1024 * 1024 + 1, 1).check()
    with pytest.raises(MCUForgeError, match=r"RAM: the tensor arena needs 262145 bytes, cortex-m4-256k has 262144"):
        Fit(target, 1, 256 * 1024 + 1).check()


@pytest.mark.parametrize("name", ["cortex-m3", "../deploy/targets/cortex-m4-256k", ""])
def test_unknown_target(name):
    with pytest.raises(MCUForgeError, match="unknown target .* expected one of .*cortex-m4-256k"):
        load_target(name)


def test_prepare_input_quantizes_floats_and_batches():
    tensor = read_tflite(HELLO).main.input_tensors[0]  # scale 0.024480116, zero point -128
    x = np.array([[np.pi / 2], [0.0], [100.0]], dtype=np.float32)
    # pi/2 / 0.024480116 = 64.17 -> 64 - 128 = -64 (MANIFEST); 0 -> -128; 100 saturates at 127.
    assert prepare_input(x, tensor).astype(np.int32).tolist() == [[-64], [-128], [127]]
    assert prepare_input(np.int8(5).reshape(1), tensor).shape == (1, 1)


@pytest.mark.parametrize(
    "array, problem",
    [(np.zeros((2, 3), np.int8), "has shape"), (np.zeros((2, 1), np.int16), "has dtype int16"), (np.zeros((2, 1), np.uint8), "has dtype uint8")],
)
def test_prepare_input_rejects_wrong_shape_or_dtype(array, problem):
    tensor = read_tflite(HELLO).main.input_tensors[0]
    with pytest.raises(MCUForgeError, match=problem):
        prepare_input(array, tensor)


def patched_hello_world(mutate) -> bytes:
    """hello_world re-packed after `mutate(model)` edits its flatbuffer object tree."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(HELLO.read_bytes()), 0)
    mutate(model, schema)
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_kernel_that_rejects_a_model_is_named_with_its_op_version():
    """The last output retyped to int32: TFLM's FULLY_CONNECTED refuses it in Prepare."""
    from mcuforge.deploy.tflm import Emulator

    def retype(model, schema):
        graph = model.subgraphs[0]
        graph.tensors[graph.operators[-1].outputs[0]].type = schema.TensorType.INT32

    data = patched_hello_world(retype)
    with pytest.raises(MCUForgeError, match=r"TFLM cannot run patched\.tflite: node 2 \(FULLY_CONNECTED version 4\) failed to prepare.*INT8 != INT32"):
        Emulator(parse_tflite(data, "patched.tflite"), data)


def test_unregistered_custom_op_is_named():
    from mcuforge.deploy.tflm import Emulator

    def make_custom(model, schema):
        code = model.operatorCodes[0]
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = "MyOp"
        for op in model.subgraphs[0].operators:
            op.builtinOptions, op.builtinOptionsType = None, 0

    data = patched_hello_world(make_custom)
    model = parse_tflite(data, "custom.tflite")
    assert model.op_names == ("MyOp",) and all(op.is_custom for op in model.main.operators)
    with pytest.raises(MCUForgeError, match=r"custom op MyOp \(version 4\) is not registered in TFLM"):
        Emulator(model, data)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(min_size=1, max_size=100))
def test_array_text_parses_back_to_the_same_bytes(data):
    text = array_definition("m", data)
    body = text[text.index("{") + 1 : text.index("}")]
    assert bytes(int(token, 16) for token in body.replace(",", " ").split()) == data
    assert text.endswith(f"g_m_model_data_len = {len(data)};")


@settings(max_examples=100, deadline=None)
@given(
    scale=st.floats(1e-4, 1.0),
    zero_point=st.integers(-128, 127),
    values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8),
)
def test_quantize_round_trip_is_within_half_a_step(scale, zero_point, values):
    from mcuforge.deploy.tflite_model import Quantization, Tensor
    from mcuforge.deploy.tflm import dequantize, quantize

    tensor = Tensor(0, "t", (1, len(values)), (1, len(values)), "int8", Quantization((scale,), (zero_point,), 0), b"", False)
    x = np.array(values)
    q = quantize(x, tensor)
    assert q.dtype == np.int8
    lo, hi = scale * (-128 - zero_point), scale * (127 - zero_point)  # the representable range
    inside = (x >= lo) & (x <= hi)
    error = np.abs(dequantize(q, tensor).astype(np.float64) - x)
    assert np.all(error[inside] <= scale / 2 + 1e-4)  # 1e-4: float32 rounding of values below 256
    assert np.all(q.astype(np.int32)[x < lo] == -128) and np.all(q.astype(np.int32)[x > hi] == 127)
