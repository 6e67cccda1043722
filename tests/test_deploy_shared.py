"""deploy/ on the real TFLM example models in ../shared/models: goldens, known results, export, report.

The oracles are the upstream results listed in shared/MANIFEST.md, the .tflite
bytes themselves (C++ round trip) and figures counted by hand.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SHARED
from mcuforge.deploy.export import export
from mcuforge.deploy.golden import record, verify
from mcuforge.deploy.report import build_report
from mcuforge.deploy.tflite_model import read_tflite
from mcuforge.errors import MCUForgeError

MODELS = SHARED / "models" / "tflite-micro"
GOLDENS = REPO / "tests" / "goldens"
SHARED_MODELS = {
    "hello_world_int8": MODELS / "hello_world" / "hello_world_int8.tflite",
    "hello_world_float": MODELS / "hello_world" / "hello_world_float.tflite",
    "person_detect": MODELS / "person_detection" / "person_detect.tflite",
    "person_detect.qdim_patched": MODELS / "person_detection" / "person_detect.qdim_patched.tflite",
    "micro_speech_quantized": MODELS / "micro_speech" / "micro_speech_quantized.tflite",
    "trained_lstm_int8": MODELS / "mnist_lstm" / "trained_lstm_int8.tflite",
    "magic_wand": MODELS / "magic_wand" / "magic_wand.tflite",
}


def person_pixels(name: str) -> np.ndarray:
    """MANIFEST recipe: 8-bit palette BMP, pixels at 1078, rows bottom-up, bytes read as int8."""
    raw = (MODELS / "person_detection" / "testdata" / name).read_bytes()
    return np.frombuffer(raw[1078 : 1078 + 96 * 96], np.uint8).reshape(96, 96)[::-1].view(np.int8)[..., np.newaxis]


def golden(name: str, kind: str) -> np.ndarray:
    return np.load(GOLDENS / name / f"{kind}.npy")


def test_every_shared_model_has_goldens():
    on_disk = {p.stem for p in MODELS.rglob("*.tflite")}
    assert on_disk == {Path(p).name.removesuffix(".tflite") for p in SHARED_MODELS.values()}
    assert all((GOLDENS / name / "golden.json").is_file() for name in SHARED_MODELS)


@pytest.mark.parametrize("name", sorted(SHARED_MODELS))
def test_goldens_verify(name):
    result = verify(SHARED_MODELS[name], GOLDENS / name)
    assert result.samples == len(golden(name, "input"))


def test_hello_world_int8_known_result():
    inputs, outputs = golden("hello_world_int8", "input"), golden("hello_world_int8", "output_0")
    assert inputs[0, 0] == -64 and outputs[0, 0] == 126  # MANIFEST: x = pi/2 (int8 -64) -> 126
    x = 0.024480116 * (inputs.astype(np.float64) + 128)
    y = 0.0082909567 * (outputs.astype(np.float64) - 5)
    np.testing.assert_allclose(y, np.sin(x), atol=0.1)  # the model approximates sin over [0, 2 pi]


def test_hello_world_float_approximates_sine():
    inputs, outputs = golden("hello_world_float", "input"), golden("hello_world_float", "output_0")
    np.testing.assert_allclose(outputs, np.sin(inputs), atol=0.1)


@pytest.mark.parametrize("name", ["person_detect", "person_detect.qdim_patched"])
def test_person_detect_known_results(name):
    np.testing.assert_array_equal(golden(name, "input"), np.stack([person_pixels("person.bmp"), person_pixels("no_person.bmp")]))
    np.testing.assert_array_equal(golden(name, "output_0").astype(np.int32), [[-113, 113], [57, -57]])


def test_lstm_classifies_each_sample_digit():
    assert golden("trained_lstm_int8", "output_0").argmax(axis=1).tolist() == list(range(10))


def test_magic_wand_known_results():
    outputs = golden("magic_wand", "output_0")  # wing, ring, slope, negative
    assert outputs[0].argmax() == 1 and round(float(outputs[0, 1]), 2) == 0.80
    assert outputs[1].argmax() == 2 and round(float(outputs[1, 2]), 2) == 0.95


def test_verify_names_the_changed_element(tmp_path):
    copy = tmp_path / "person"
    shutil.copytree(GOLDENS / "person_detect", copy)
    outputs = np.load(copy / "output_0.npy")
    outputs[1, 0] += 1
    np.save(copy / "output_0.npy", outputs)
    with pytest.raises(MCUForgeError, match=r"input 1 output 0 element 0: expected 58, got 57"):
        verify(SHARED_MODELS["person_detect"], copy)


def test_verify_fails_when_the_model_changed(tmp_path):
    model = tmp_path / "hello.tflite"
    data = bytearray(SHARED_MODELS["hello_world_int8"].read_bytes())
    model.write_bytes(data)
    record(model, tmp_path / "g", golden("hello_world_int8", "input"))
    weights = max(read_tflite(model).main.tensors, key=lambda t: len(t.data)).data
    data[bytes(data).find(weights)] ^= 1  # one weight bit: still a valid model
    model.write_bytes(data)
    with pytest.raises(MCUForgeError, match="model's bytes changed"):
        verify(model, tmp_path / "g")


def test_record_defaults_to_seeded_random_inputs(tmp_path):
    first = record(SHARED_MODELS["micro_speech_quantized"], tmp_path / "a", count=3, seed=7)
    second = record(SHARED_MODELS["micro_speech_quantized"], tmp_path / "b", count=3, seed=7)
    inputs = np.load(tmp_path / "a" / "input.npy")
    assert inputs.shape == (3, 1960) and inputs.dtype == np.int8
    assert np.array_equal(inputs, np.load(tmp_path / "b" / "input.npy"))
    assert np.array_equal(first.outputs[0], second.outputs[0])


@pytest.mark.parametrize("name", ["hello_world", "micro_speech"])
def test_export_matches_golden_files(tmp_path, name):
    model = {"hello_world": SHARED_MODELS["hello_world_int8"], "micro_speech": SHARED_MODELS["micro_speech_quantized"]}[name]
    labels = REPO / "tests" / "data" / "micro_speech_labels.txt" if name == "micro_speech" else None
    result = export(model, tmp_path / name, name, labels)
    expected_dir = GOLDENS / "export" / name
    assert sorted(result.files) == sorted(p.name for p in expected_dir.iterdir())
    for file_name in result.files:
        assert (tmp_path / name / file_name).read_text() == (expected_dir / file_name).read_text(), file_name


def test_hello_world_settings_hold_the_manifest_quantization():
    settings = (GOLDENS / "export" / "hello_world" / "hello_world_model_settings.h").read_text()

    def constant(name: str) -> str:
        return re.search(rf"constexpr \w+ {name} = ([^;]+);", settings)[1]

    # MANIFEST: input scale 0.024480116, zp -128; output scale 0.0082909567, zp 5 (same float32 values).
    assert np.float32(constant("kHelloWorldInputScale").rstrip("f")) == np.float32(0.024480116)
    assert np.float32(constant("kHelloWorldOutputScale").rstrip("f")) == np.float32(0.0082909567)
    assert constant("kHelloWorldInputZeroPoint") == "-128" and constant("kHelloWorldOutputZeroPoint") == "5"
    resolver = (GOLDENS / "export" / "hello_world" / "hello_world_op_resolver.h").read_text()
    assert "tflite::MicroMutableOpResolver<1>" in resolver and resolver.count("resolver.Add") == 1
    assert "resolver.AddFullyConnected()" in resolver


ROUND_TRIP_MAIN = """
#include <cstdint>
#include <cstdio>
#include "{name}_model_data.h"
#include "{name}_model_settings.h"

static_assert(k{camel}TensorArenaSize % 16 == 0, "arena size is 16-byte aligned");

int main(int argc, char** argv) {{
  if (argc != 2) return 2;
  if (reinterpret_cast<std::uintptr_t>(g_{name}_model_data) % 16 != 0) return 3;
  std::FILE* out = std::fopen(argv[1], "wb");
  if (out == nullptr) return 4;
  std::size_t written = std::fwrite(g_{name}_model_data, 1, g_{name}_model_data_len, out);
  std::fclose(out);
  std::printf("%d %d\\n", k{camel}InputElements, k{camel}OutputElements);
  return written == g_{name}_model_data_len ? 0 : 1;
}}
"""


@pytest.mark.parametrize("key", ["hello_world_int8", "person_detect", "trained_lstm_int8", "magic_wand", "micro_speech_quantized"])
def test_cpp_round_trip_gives_the_tflite_byte_for_byte(tmp_path, key):
    from mcuforge.deploy.export import camel_case

    model_path = SHARED_MODELS[key]
    name = "model"
    result = export(model_path, tmp_path / "src", name)
    main = tmp_path / "src" / "main.cc"
    main.write_text(ROUND_TRIP_MAIN.format(name=name, camel=camel_case(name)))
    program = tmp_path / "round_trip"
    compile_cmd = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O0", str(main),
                   str(tmp_path / "src" / f"{name}_model_data.cc"), "-o", str(program)]
    subprocess.run(compile_cmd, check=True, capture_output=True)
    out = tmp_path / "back.tflite"
    run = subprocess.run([str(program), str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == model_path.read_bytes()
    model = read_tflite(model_path)
    assert run.stdout.split() == [str(model.main.input_tensors[0].elements), str(model.main.output_tensors[0].elements)]
    assert result.ops == model.op_names


def test_export_of_every_shared_model_registers_exactly_its_ops(tmp_path):
    for key, path in SHARED_MODELS.items():
        result = export(path, tmp_path / key, "m")
        resolver = (tmp_path / key / "m_op_resolver.h").read_text()
        assert f"MicroMutableOpResolver<{len(result.ops)}>" in resolver
        assert resolver.count("resolver.Add") == len(result.ops), key


def test_report_figures_by_hand():
    report = build_report(SHARED_MODELS["hello_world_int8"], "cortex-m4-256k")
    # Dense 1->16, 16->16, 16->1: MACs 16 + 256 + 16; params (weights + biases) 32 + 272 + 17.
    assert [r.macs for r in report.layers] == [16, 256, 16]
    assert [r.parameters for r in report.layers] == [32, 272, 17]
    # int8 weights + int32 biases: 16 + 64, 256 + 64, 16 + 4 bytes.
    assert [r.weight_bytes for r in report.layers] == [80, 320, 20]
    assert report.flash_bytes == 2704 and report.macs == 288 and report.fit_problems == []
    lstm = build_report(SHARED_MODELS["trained_lstm_int8"])
    # 28 steps x 4 gates x 20 units x (28 inputs + 20 recurrent); then Dense 560 -> 10.
    assert lstm.layers[0].macs == 28 * 4 * 20 * (28 + 20)
    assert lstm.layers[2].macs == 560 * 10


def test_person_detect_report_and_fit():
    report = build_report(SHARED_MODELS["person_detect"], "cortex-m0plus-264k")
    first = report.layers[0]  # depthwise 3x3, stride 2, 1 -> 8 channels: 48*48*8 outputs x 9 taps
    assert first.op == "DEPTHWISE_CONV_2D" and first.macs == 48 * 48 * 8 * 9
    conv = report.layers[2]  # pointwise 8 -> 16 at 48x48
    assert conv.op == "CONV_2D" and conv.macs == 48 * 48 * 16 * 8
    assert report.flash_bytes == 300568 and report.fit_problems == []
    assert 0 < report.arena_measured_bytes < report.arena_bytes


def test_report_files(tmp_path):
    from mcuforge.deploy.report import read_report, write_report

    report = build_report(SHARED_MODELS["micro_speech_quantized"])
    md, js = write_report(report, tmp_path)
    assert read_report(js) == report
    assert json.loads(js.read_text())["flash_bytes"] == 18800
    assert "| 0 | RESHAPE | 1x1960 | 1x49x40x1 |" in md.read_text()


def test_golden_micro_speech_sources_compile_with_labels(tmp_path):
    source = GOLDENS / "export" / "micro_speech"
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdio>\n#include "micro_speech_model_data.h"\n#include "micro_speech_model_settings.h"\n'
        "int main() {\n"
        '  std::printf("%s %d %u\\n", kMicroSpeechLabels[2], kMicroSpeechInputElements, g_micro_speech_model_data_len);\n'
        "  return kMicroSpeechLabelCount == kMicroSpeechOutputElements ? 0 : 1;\n}\n"
    )
    program = tmp_path / "labels"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{source}", str(main),
         str(source / "micro_speech_model_data.cc"), "-o", str(program)],
        check=True, capture_output=True,
    )
    run = subprocess.run([str(program)], capture_output=True, text=True)
    # MANIFEST: input int8 [1, 1960], 18,800 bytes, outputs silence, unknown, yes, no.
    assert run.returncode == 0 and run.stdout.split() == ["yes", "1960", "18800"]


def test_parameter_tensors_are_weights_and_biases_only():
    from mcuforge.deploy.report import parameter_tensors

    graph = read_tflite(SHARED_MODELS["person_detect"]).main
    tensors = parameter_tensors(graph)
    reshape = next(op for op in graph.operators if op.opcode == "RESHAPE")
    assert all(i not in {t.index for t in tensors} for i in reshape.inputs)  # its shape operand is configuration
    convolutions = [op for op in graph.operators if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convolutions) == 28 and len(tensors) == 2 * 28  # each has a filter and a bias
    assert sum(t.elements for t in tensors) == build_report(SHARED_MODELS["person_detect"]).parameters
