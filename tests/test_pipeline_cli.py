"""`mcuforge run` on the command line: progress in a log, a failing stage keeps the last good output, the next run resumes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MCUFORGE = Path(sys.executable).parent / "mcuforge"
SPEC = {
    "name": "cli-digits",
    "data": {"dataset": "digits"},
    "model": {"arch": "tiny_cnn", "width": 0.5},
    "train": {"epochs": 2, "batch_size": 64, "learning_rate": 0.003},
    "compress": {"steps": []},
}


def _run(spec: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run(
        [str(MCUFORGE), "run", str(path), "--root", str(tmp_path / "build")], cwd=tmp_path, capture_output=True, text=True, timeout=1200
    )


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_run_logs_progress_keeps_the_last_output_on_failure_and_resumes(tmp_path):
    first = _run(SPEC, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    # Not a terminal: one plain line per epoch and per stage, no progress bar escapes.
    assert "train epoch 1/2" in first.stdout and "train epoch 2/2" in first.stdout
    for stage in ("train", "deploy", "firmware", "accelerators"):
        assert f"{stage}: running" in first.stdout
    assert "\x1b[" not in first.stdout

    build = tmp_path / "build" / "cli-digits"
    deployed = _snapshot(build / "deploy")
    assert ".mcuforge-stage.json" in deployed

    broken = _run({**SPEC, "deploy": {"target": "no-such-board"}}, tmp_path)
    assert broken.returncode == 2
    errors = [line for line in broken.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "unknown target 'no-such-board'" in errors[0]
    assert "Traceback" not in broken.stderr
    assert "reused" in broken.stdout.split("deploy: running")[0]  # train was reused before deploy failed
    assert _snapshot(build / "deploy") == deployed  # the last good output and its stamp, byte for byte
    assert sorted(p.name for p in build.iterdir() if p.name.startswith(".")) == []  # no staging left

    again = _run(SPEC, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    stage_lines = [line for line in again.stdout.splitlines() if re.match(r"(train|deploy|firmware|accelerators) ", line)]
    assert len(stage_lines) == 4 and all(re.match(r"\w+ +reused \(inputs unchanged\)  /", line) for line in stage_lines), again.stdout
