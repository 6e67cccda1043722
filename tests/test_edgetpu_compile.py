"""edgetpu_compiler: parsing its real logs, and running it through a STAND-IN.

The real compiler installs only from Coral's apt repository, which this
project's registries cannot reach. So the parser is checked on logs the real
compiler printed (quoted in public google-coral/edgetpu issues), and
`compile_model` runs tests/fixtures/edgetpu_compiler_standin, a stand-in that
takes the real options, copies the model and prints a log in the real format.
It proves the plumbing (options, outputs, atomic writes, failures), not the
compilation.
"""

import json
import os
from pathlib import Path

import pytest

from conftest import REPO, SHARED
from mcuforge.deploy import edgetpu, edgetpu_compiler
from mcuforge.deploy.tflite_model import read_tflite
from mcuforge.errors import MCUForgeError

HELLO = SHARED / "models" / "tflite-micro" / "hello_world" / "hello_world_int8.tflite"
STANDIN = REPO / "tests" / "fixtures" / "edgetpu_compiler_standin"

# google-coral/edgetpu issue 60: compiler 2.1, some ops left on the CPU (operator table cut after 4 rows).
PARTLY_MAPPED_LOG = """\
Edge TPU Compiler version 2.1.302470888

Model compiled successfully in 12264 ms.

Input model: model2.tflite
Input size: 8.11MiB
Output model: model2_edgetpu.tflite
Output size: 9.47MiB
On-chip memory used for caching model parameters: 6.86MiB
On-chip memory remaining for caching model parameters: 7.75KiB
Off-chip memory used for streaming uncached model parameters: 1.22MiB
Number of Edge TPU subgraphs: 1
Total number of operations: 93
Operation log: model2_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 83
Number of operations that will run on CPU: 10

Operator                       Count      Status

LOGISTIC                       1          More than one subgraph is not supported
ADD                            10         Mapped to Edge TPU
CONCATENATION                  1          More than one subgraph is not supported
CONCATENATION                  3          Mapped to Edge TPU
"""

# WongKinYiu/yolov7 pull request 1672: compiler 16.0, every op mapped (no per-device counts printed).
FULLY_MAPPED_LOG = """\
Edge TPU Compiler version 16.0.384591198
Searching for valid delegate with step 10
Try to compile segment with 246 ops
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 3133 ms.

Input model: runs/train/exp8/weights/best-int8.tflite
Input size: 6.00MiB
Output model: runs/train/exp8/weights/best-int8_edgetpu.tflite
Output size: 6.47MiB
On-chip memory used for caching model parameters: 5.90MiB
On-chip memory remaining for caching model parameters: 1.16MiB
Off-chip memory used for streaming uncached model parameters: 41.75KiB
Number of Edge TPU subgraphs: 1
Total number of operations: 246
Operation log: runs/train/exp8/weights/best-int8_edgetpu.log

Operator                       Count      Status

ADD                            3          Mapped to Edge TPU
RESHAPE                        6          Mapped to Edge TPU
"""


def test_parses_a_real_log_with_ops_on_the_cpu():
    version, (model,) = edgetpu_compiler.parse_compiler_log(PARTLY_MAPPED_LOG)
    assert version == "2.1.302470888"
    assert (model.input_model, model.output_model) == ("model2.tflite", "model2_edgetpu.tflite")
    assert model.on_chip_bytes == round(6.86 * 1024 * 1024)
    assert model.on_chip_remaining_bytes == round(7.75 * 1024)
    assert model.off_chip_bytes == round(1.22 * 1024 * 1024)
    assert (model.total_ops, model.ops_on_edgetpu, model.ops_on_cpu, model.edgetpu_subgraphs) == (93, 83, 10, 1)
    assert model.operators[0] == edgetpu_compiler.OperatorCount("LOGISTIC", 1, "More than one subgraph is not supported")
    assert [o.count for o in model.operators] == [1, 10, 1, 3]


def test_parses_a_real_log_with_every_op_mapped():
    version, (model,) = edgetpu_compiler.parse_compiler_log(FULLY_MAPPED_LOG)
    assert version == "16.0.384591198"
    assert (model.total_ops, model.ops_on_edgetpu, model.ops_on_cpu) == (246, 246, 0)
    assert model.off_chip_bytes == round(41.75 * 1024)
    assert model.operators[1] == edgetpu_compiler.OperatorCount("RESHAPE", 6, edgetpu.MAPPED)


def test_parse_size_units():
    assert [edgetpu_compiler.parse_size(s) for s in ("0.00B", "512.00B", "1.50KiB", "2.00MiB")] == [0, 512, 1536, 2 * 1024 * 1024]
    with pytest.raises(MCUForgeError, match="cannot read the size '3 MB'"):
        edgetpu_compiler.parse_size("3 MB")


def test_a_log_without_a_model_names_the_compilers_last_line():
    with pytest.raises(MCUForgeError, match="produced no model: Internal compiler error. Aborting!"):
        edgetpu_compiler.parse_compiler_log("Edge TPU Compiler version 14.1.317412892\n\nInternal compiler error. Aborting! \n")


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stand-in on PATH as `edgetpu_compiler`; returns (scenario file, argv log)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "edgetpu_compiler").symlink_to(STANDIN)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    scenario, argv = tmp_path / "scenario.json", tmp_path / "argv.jsonl"
    scenario.write_text("{}")  # the stand-in's default: every op mapped
    monkeypatch.setenv("EDGETPU_STANDIN_SCENARIO", str(scenario))
    monkeypatch.setenv("EDGETPU_STANDIN_ARGV", str(argv))
    return scenario, argv


def test_compile_writes_the_model_log_and_parsed_report(standin, tmp_path):
    scenario, argv = standin
    scenario.write_text(json.dumps({
        "operators": [["FULLY_CONNECTED", 2, edgetpu.MAPPED], ["FULLY_CONNECTED", 1, "More than one subgraph is not supported"]],
        "on_chip": 1536, "remaining": 8 * 1024 * 1024 - 1536, "off_chip": 0,
    }))  # fmt: skip
    out = tmp_path / "out"
    result = edgetpu_compiler.compile_model(HELLO, out, min_runtime=13)
    (model,) = result.models
    assert result.compiler_version.startswith("16.0")
    assert (model.total_ops, model.ops_on_edgetpu, model.ops_on_cpu) == (3, 2, 1)
    assert (model.on_chip_bytes, model.off_chip_bytes) == (1536, 0)
    assert result.outputs == [str(out / "hello_world_int8_edgetpu.tflite")]
    assert (out / "hello_world_int8_edgetpu.log").is_file()
    assert json.loads((out / "hello_world_int8_edgetpu.json").read_text())["models"][0]["ops_on_cpu"] == 1
    (args,) = [json.loads(line) for line in argv.read_text().splitlines()]
    assert args[args.index("--min_runtime_version") + 1] == "13" and "--show_operations" in args
    assert "--num_segments" not in args
    # The compiler was given the model with its batch fixed at 1 (the stand-in copies its input unchanged).
    compiled = read_tflite(out / "hello_world_int8_edgetpu.tflite")
    assert compiled.main.input_tensors[0].shape_signature == (1, 1)
    assert not list(out.glob(".edgetpu.*"))  # no staging left behind


def test_segments_give_one_model_each(standin, tmp_path):
    result = edgetpu_compiler.compile_model(HELLO, tmp_path / "out", num_segments=2)
    names = [Path(p).name for p in result.outputs]
    assert names == ["hello_world_int8_segment_0_of_2_edgetpu.tflite", "hello_world_int8_segment_1_of_2_edgetpu.tflite"]
    assert len(result.models) == 2
    assert [Path(m.output_model).name for m in result.models] == names


def test_a_failed_compile_keeps_the_last_good_model(standin, tmp_path):
    scenario, _ = standin
    out = tmp_path / "out"
    edgetpu_compiler.compile_model(HELLO, out)
    good = (out / "hello_world_int8_edgetpu.tflite").read_bytes()
    scenario.write_text(json.dumps({"fail": "Internal compiler error. Aborting!"}))
    with pytest.raises(MCUForgeError, match="edgetpu_compiler failed on .*Internal compiler error. Aborting!"):
        edgetpu_compiler.compile_model(HELLO, out)
    assert (out / "hello_world_int8_edgetpu.tflite").read_bytes() == good


def test_missing_compiler_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MCUForgeError) as info:
        edgetpu_compiler.compile_model(HELLO, tmp_path / "out")
    message = str(info.value)
    assert "edgetpu_compiler is not installed" in message
    assert "coral-edgetpu-stable" in message and "apt-get install edgetpu-compiler" in message
    assert not (tmp_path / "out").exists()


def test_report_section_puts_the_check_beside_the_compilers_figures():
    version, models = edgetpu_compiler.parse_compiler_log(PARTLY_MAPPED_LOG)
    compiled = edgetpu_compiler.CompileResult(version, models, [], PARTLY_MAPPED_LOG)
    exp = edgetpu.Problem("supported operation", "EXP is not in the Edge TPU's supported-op table", "replace EXP")
    check = edgetpu.CompatibilityReport(
        "m.tflite", 14,
        [edgetpu.OpCheck(0, "CONV_2D", "a", edgetpu.MAPPED), edgetpu.OpCheck(1, "EXP", "b", edgetpu.UNSUPPORTED, [exp])],
        0, 1, [],
    )  # fmt: skip
    text = edgetpu_compiler.report_section(check, compiled)
    assert text.splitlines()[0] == "## Coral Edge TPU (edgetpu_compiler 2.1.302470888, runtime >= 14)"
    assert "- static check: 1 of 2 ops map, 1 on the CPU" in text
    assert "the segment ends at op 1 (EXP): supported operation: EXP is not in the Edge TPU's supported-op table. Fix: replace EXP" in text
    assert "model2_edgetpu.tflite: 83 of 93 ops on the Edge TPU, 10 on the CPU, 1 Edge TPU subgraph(s)" in text
    assert f"parameters {round(6.86 * 1024 * 1024):,} B cached on-chip ({round(7.75 * 1024):,} B free)" in text
