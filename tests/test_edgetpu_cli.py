"""`mcuforge edgetpu check|compile|run` and `mcuforge npu compile` as users run them: exit codes, one-line errors, files."""

import json
import os
import shutil
import subprocess

from conftest import REPO, SHARED

MODELS = SHARED / "models" / "tflite-micro"
STANDIN = REPO / "tests" / "fixtures" / "edgetpu_compiler_standin"


def mcuforge(*args, cwd, env=None):
    return subprocess.run([str(REPO / ".venv" / "bin" / "mcuforge"), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env)


def test_check_prints_the_report_and_json(tmp_path):
    model = MODELS / "person_detection" / "person_detect.tflite"
    text = mcuforge("edgetpu", "check", model, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "ops on the Edge TPU: 31; on the CPU: 0 (of 31)" in text.stdout
    as_json = mcuforge("edgetpu", "check", model, "--json", cwd=tmp_path)
    report = json.loads(as_json.stdout)
    assert (report["mapped"], report["on_cpu"], report["segment_end"]) == (31, 0, None)
    assert report["ops"][30]["op"] == "SOFTMAX"


def test_compile_without_the_compiler_checks_then_fails_in_one_line(tmp_path):
    env = {**os.environ, "PATH": str(REPO / ".venv" / "bin")}  # no edgetpu_compiler there
    run = mcuforge("edgetpu", "compile", MODELS / "hello_world" / "hello_world_int8.tflite", "--out", tmp_path / "out", cwd=tmp_path, env=env)
    assert run.returncode == 2
    assert "ops on the Edge TPU: 3; on the CPU: 0 (of 3)" in run.stdout  # the check still tells what would map
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("error: edgetpu_compiler is not installed") and "apt-get install edgetpu-compiler" in line
    assert not (tmp_path / "out").exists()


def test_compile_with_the_standin_writes_the_compiled_model(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "edgetpu_compiler").symlink_to(STANDIN)
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"operators": [["FULLY_CONNECTED", 3, "Mapped to Edge TPU"]], "on_chip": 1024}))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "EDGETPU_STANDIN_SCENARIO": str(scenario)}
    model = shutil.copy(MODELS / "hello_world" / "hello_world_int8.tflite", tmp_path)
    run = mcuforge("edgetpu", "compile", model, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "build" / "hello_world_int8" / "edgetpu"
    assert "wrote build/hello_world_int8/edgetpu/hello_world_int8_edgetpu.tflite" in run.stdout.splitlines()
    assert (out / "hello_world_int8_edgetpu.tflite").is_file()
    assert "3 of 3 ops on the Edge TPU, 0 on the CPU; parameters 1,024 B on-chip" in run.stdout
    assert (out / "hello_world_int8_edgetpu.json").is_file()
    report = (out / "hello_world_int8_report.md").read_text()
    assert "- static check: 3 of 3 ops map, 0 on the CPU" in report
    assert "parameters 1,024 B cached on-chip" in report and "| FULLY_CONNECTED |" in report  # beside the engine's table


def test_run_on_the_host_falls_back_to_the_cpu_with_a_notice(tmp_path):
    run = mcuforge("edgetpu", "run", MODELS / "hello_world" / "hello_world_int8.tflite", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "running" in run.stderr and "on the CPU instead" in run.stderr
    result = json.loads(run.stdout)
    assert result["device"] == "cpu" and len(result["outputs"][0][0]) == 1


def test_run_errors_are_one_line_with_exit_2(tmp_path):
    model = MODELS / "hello_world" / "hello_world_int8.tflite"
    unknown = mcuforge("edgetpu", "run", model, "--target", "coral-pcie", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.strip() == (
        "error: unknown Edge TPU target 'coral-pcie': expected one of host, coral-usb, coral-devboard"
    )
    board = mcuforge("edgetpu", "run", model, "--target", "coral-devboard", "--host", "127.0.0.1", "--port", "1", cwd=tmp_path)
    assert board.returncode == 2
    (line,) = board.stderr.strip().splitlines()
    assert line.startswith("error: ssh to 127.0.0.1 failed")


def test_npu_compile_writes_model_c_array_and_report(tmp_path):
    run = mcuforge("npu", "compile", MODELS / "hello_world" / "hello_world_int8.tflite", "--out", tmp_path / "npu", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "npu"
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "hello_world_int8_report.json",
        "hello_world_int8_report.md",
        "hello_world_int8_summary_Ethos_U55_High_End_Embedded.csv",
        "hello_world_int8_vela.c",
        "hello_world_int8_vela.h",
        "hello_world_int8_vela.json",
        "hello_world_int8_vela.tflite",
    ]
    assert "| MACs per inference | 288 | 288 |" in (out / "hello_world_int8_report.md").read_text()


def test_npu_compile_rejects_a_board_without_that_npu_before_running_vela(tmp_path):
    run = mcuforge("npu", "compile", MODELS / "hello_world" / "hello_world_int8.tflite", "--accelerator", "ethos-u85-256",
                   "--out", tmp_path / "npu", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: board corstone-300 carries ethos-u55, not ethos-u85-256: choose an accelerator of that family "
        "(e.g. ethos-u55-128) or another board"
    )
    assert not (tmp_path / "npu").exists()


def test_npu_compile_takes_the_accelerator_and_budgets_from_a_target(tmp_path):
    model = MODELS / "hello_world" / "hello_world_int8.tflite"
    run = mcuforge("npu", "compile", model, "--target", "cortex-m55-ethos-u55", "--out", tmp_path / "npu", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "## Ethos-U NPU (ethos-u55-128, Vela estimate)" in run.stdout  # the target's accelerator
    assert "- target cortex-m55-ethos-u55: fits" in (tmp_path / "npu" / "hello_world_int8_report.md").read_text()
    wrong = mcuforge("npu", "compile", model, "--target", "coral-edgetpu", cwd=tmp_path)
    assert wrong.returncode == 2 and "target coral-edgetpu has no Ethos-U NPU" in wrong.stderr
