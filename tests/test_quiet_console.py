"""Commands print no TensorFlow/CUDA start-up lines unless --verbose; the stderr filter passes everything else at once."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MCUFORGE = Path(sys.executable).parent / "mcuforge"
# What TensorFlow prints at start-up on a machine without a GPU driver (phrases, not our filter's pattern).
START_UP_PHRASES = ("oneDNN", "cuda", "cuInit", "absl::InitializeLog", "cudart_stub", "CUDA")
TINY_SPEC = """\
name: tiny
data: {dataset: digits, seed: 0}
model: {arch: tiny_cnn, width: 0.25}
train: {epochs: 1, batch_size: 64, seed: 0}
deploy: {target: cortex-m4-256k, representative_samples: 20}
"""


def filtered(script: str) -> bytes:
    """stdout and stderr of `script` (run inside StderrFilter) as one stream, in the order they were written."""
    code = "import os, time\nfrom mcuforge.tf_logs import StderrFilter\nwith StderrFilter():\n" + textwrap.indent(textwrap.dedent(script), "    ")
    return subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True, timeout=60).stdout


def test_filter_drops_start_up_lines_and_passes_the_rest_byte_for_byte():
    noise = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1795855175.321632   10915 port.cc:153] oneDNN custom operations are on.\n"
        b"W0000 00:00:1795855175.325334   10915 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
        b"E0000 00:00:1795855181.108321   10915 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
    )
    kept = (
        b"error: model file not found: x.tflite\n"
        b"E0000 00:00:1795855181.108321   10915 interpreter.cc:9] Node 3 failed to prepare\n"  # a real C++ error stays
        b"Traceback (most recent call last):\n"
        b"I01 is not a log line\n"
        b"caf\xc3\xa9 without a final newline"
    )
    out = filtered(f"os.write(2, {noise[:100]!r})\nos.write(2, {noise[100:] + kept[:50]!r})\nos.write(2, {kept[50:]!r})\n")
    assert out == kept


def test_a_partial_line_that_cannot_be_a_log_line_passes_before_its_newline():
    out = filtered("""\
        os.write(2, b"\\rtrain 50%")
        time.sleep(0.5)
        os.write(1, b"MARK\\n")
        os.write(2, b"\\n")
    """)
    assert out == b"\rtrain 50%MARK\n\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("quiet")
    (path / "tiny.yaml").write_text(TINY_SPEC)
    return path


def mcuforge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MCUFORGE_CACHE": str(cwd / "cache")}
    return subprocess.run([str(MCUFORGE), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_train_and_convert_print_no_start_up_lines_and_verbose_shows_them(workdir):
    for command in ("train", "convert"):
        result = mcuforge(command, "tiny.yaml", cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1].startswith("wrote build/tiny/")
        assert not [p for p in START_UP_PHRASES if p in result.stderr], result.stderr
    verbose = mcuforge("--verbose", "convert", "tiny.yaml", cwd=workdir)
    assert verbose.returncode == 0, verbose.stderr
    assert [p for p in START_UP_PHRASES if p in verbose.stderr], verbose.stderr
