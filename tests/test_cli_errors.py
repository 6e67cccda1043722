"""Every command in `mcuforge --help`, given bad input, exits with status 2 and one `error:` line (no traceback).

Bad input: a missing file, a corrupt or truncated .tflite, a spec that is not
valid, an input array of the wrong shape or dtype, an output path that cannot
be written. Each case runs the real command in a subprocess; the line must name
what is wrong (`names`).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer.main

from conftest import REPO, SHARED
from mcuforge.cli import app

MCUFORGE = Path(sys.executable).parent / "mcuforge"
HELLO = SHARED / "models" / "tflite-micro" / "hello_world" / "hello_world_int8.tflite"
SPEC_COMMANDS = ("compress", "convert", "data", "evaluate", "federate", "run", "train")
MODEL_COMMANDS = {
    "edgetpu check": [],
    "edgetpu compile": ["--out", "out"],
    "edgetpu run": [],
    "emulate": ["--input", "ok.npy"],
    "engine run": ["--input", "ok.npy"],
    "engine stats": [],
    "export": ["--out", "out"],
    "firmware build": [],
    "firmware run": [],
    "firmware flash": [],
    "golden record": ["--dir", "goldens-new"],
    "golden verify": ["--dir", "goldens"],
    "npu compile": ["--out", "out"],
    "report": ["--out", "out"],
}
INPUT_COMMANDS = {  # commands that take an input array for hello_world (int8 [1, 1])
    "emulate": [],
    "engine run": [],
    "firmware run": [],
    "firmware build": [],
    "golden record": ["--dir", "goldens-new"],
    "edgetpu run": [],
}
DEMO_SPECS = {"digits": [], "gestures": [], "vibration": [], "kws": ["--say", "yes"]}


def cases() -> list[tuple[str, list[str], str]]:
    """(command, arguments, what the error line must name)."""
    found = []
    for command in SPEC_COMMANDS:
        found += [
            (command, ["missing.yaml"], "missing.yaml"),
            (command, ["unknown_key.yaml"], "modle"),
            (command, ["list.yaml"], "expected a mapping"),
            (command, ["negative_epochs.yaml"], "train.epochs"),
            (command, ["bad_data_option.yaml"], "data.options.noise"),
            (command, ["unknown_arch.yaml"], "model.arch"),
            (command, ["not_yaml.yaml"], "not valid YAML at line 3, column 1"),
        ]
    found += [(command, ["bad_recipe.yaml"], "distill after prune") for command in ("compress", "run")]
    for command, extra in MODEL_COMMANDS.items():
        for model, names in (("missing.tflite", "missing.tflite"), ("corrupt.tflite", "corrupt.tflite"), ("truncated.tflite", "truncated.tflite")):
            found.append((command, [model, *extra], names))
    for command, extra in INPUT_COMMANDS.items():
        for array, names in (("shape.npy", "[1, 5]"), ("dtype.npy", "int32"), ("missing.npy", "missing.npy"), ("pickle.npy", "pickle.npy")):
            found.append((command, ["hello.tflite", "--input", array, *extra], names))
    for demo, extra in DEMO_SPECS.items():
        spec = str(REPO / "specs" / f"{'keywords' if demo == 'kws' else demo}.yaml")
        found += [
            (f"demo {demo}", ["--spec", "missing.yaml", *extra], "missing.yaml"),
            (f"demo {demo}", ["--spec", "unknown_key.yaml", *extra], "modle"),
            (f"demo {demo}", ["--spec", "bad_data_option.yaml", *extra], "data.options.noise"),
            (f"demo {demo}", ["--spec", spec, "--model", "missing.tflite", *extra], "missing.tflite"),
            (f"demo {demo}", ["--spec", spec, "--model", "corrupt.tflite", *extra], "not a TFLite model"),
        ]
    found += [
        ("demo kws", ["--spec", str(REPO / "specs" / "keywords.yaml"), "--model", "hello.tflite", "--wav", "missing.wav"], "missing.wav"),
        ("emulate", ["hello.tflite", "--input", "ok.npy", "--output", "corrupt.tflite/y.npy"], "corrupt.tflite"),
        ("engine run", ["hello.tflite", "--input", "ok.npy", "--output", "corrupt.tflite/y.npy"], "corrupt.tflite"),
        ("export", ["hello.tflite", "--out", "corrupt.tflite/out"], "corrupt.tflite"),
        ("firmware build", ["hello.tflite", "--out", "corrupt.tflite/out"], "corrupt.tflite"),
        ("train", [str(REPO / "specs" / "digits.yaml"), "--out", "corrupt.tflite/out"], "corrupt.tflite"),
    ]
    return found


CASES = cases()


def commands_in_help() -> set[str]:
    """Every leaf command of the CLI, as `mcuforge --help` and its groups list them."""

    def walk(command, prefix: tuple[str, ...]) -> set[str]:
        children = getattr(command, "commands", None)
        if children is None:
            return {" ".join(prefix)}
        return set().union(*(walk(child, (*prefix, name)) for name, child in children.items()))

    return walk(typer.main.get_command(app), ())


def test_every_command_has_bad_input_cases():
    assert {command for command, _, _ in CASES} == commands_in_help()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder of bad inputs (and a few good ones to combine them with)."""
    from mcuforge.deploy.golden import record

    path = tmp_path_factory.mktemp("bad-input")
    (path / "unknown_key.yaml").write_text("name: bad\ndata: {dataset: digits}\nmodle: {arch: tiny_cnn}\n")
    (path / "bad_data_option.yaml").write_text("name: bad\ndata: {dataset: digits, options: {noise: 1}}\nmodel: {arch: tiny_cnn}\n")
    (path / "unknown_arch.yaml").write_text("name: bad\ndata: {dataset: digits}\nmodel: {arch: lenet}\n")
    (path / "bad_recipe.yaml").write_text("name: bad\ndata: {dataset: digits}\nmodel: {arch: tiny_cnn}\ncompress: {steps: [prune, distill]}\n")
    (path / "list.yaml").write_text("- just\n- a list\n")
    (path / "not_yaml.yaml").write_text("name: bad\ndata: [unclosed\n")
    (path / "negative_epochs.yaml").write_text("name: neg\ndata: {dataset: digits}\nmodel: {arch: tiny_cnn}\ntrain: {epochs: -1}\n")
    (path / "hello.tflite").write_bytes(HELLO.read_bytes())
    (path / "corrupt.tflite").write_text("this is not a model at all, just text.....")
    (path / "truncated.tflite").write_bytes(HELLO.read_bytes()[:300])
    np.save(path / "ok.npy", np.zeros((1, 1), np.int8))
    np.save(path / "shape.npy", np.zeros((1, 5), np.int8))
    np.save(path / "dtype.npy", np.zeros((1, 1), np.int32))
    np.save(path / "pickle.npy", np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    record(HELLO, path / "goldens", count=1)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("command, args, names", CASES, ids=[f"{c} {' '.join(Path(a).name for a in args)}" for c, args, _ in CASES])
def test_bad_input_gives_one_error_line_and_status_2(workdir, command, args, names):
    env = {**os.environ, "MCUFORGE_CACHE": str(workdir / "cache")}
    result = subprocess.run([str(MCUFORGE), *command.split(), *args], cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert names in lines[0]
