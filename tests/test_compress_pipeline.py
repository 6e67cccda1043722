"""`mcuforge compress SPEC` end to end: the digits default recipe, and a bad recipe on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
MCUFORGE = Path(sys.executable).parent / "mcuforge"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(MCUFORGE), *args], cwd=cwd, capture_output=True, text=True, timeout=1200)


def test_bad_recipe_is_one_line_exit_2(tmp_path):
    data = yaml.safe_load((REPO / "specs" / "digits.yaml").read_text())
    data["compress"] = {"steps": ["quantize", "cluster"]}
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = _run("compress", str(spec), "--root", str(tmp_path / "build"), cwd=tmp_path)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "cluster after quantize cannot work" in error_lines[0]
    assert not (tmp_path / "build").exists()


@pytest.mark.slow
def test_digits_default_recipe(tmp_path):
    """Trains digits, then distill -> prune -> quantize; every figure is checked against its neighbours."""
    from mcuforge.deploy.convert import is_quantization_aware
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.layout import KERAS_MODEL_FILE
    from mcuforge.train.trainer import load_model

    result = _run("compress", str(REPO / "specs" / "digits.yaml"), "--root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "digits" / "compress"
    for name in ("distill", "prune", "quantize", "distill (labels only)"):
        assert name in result.stdout
    steps = json.loads((out / "steps.json").read_text())
    rows = {row["step"]: row for row in steps["rows"]}
    assert list(rows) == ["float", "trained", "distill", "distill (labels only)", "prune", "quantize"]
    trained, distill, prune, final = rows["trained"], rows["distill"], rows["prune"], rows["quantize"]
    assert distill["parameters"] < trained["parameters"] / 2 and distill["macs"] < trained["macs"] / 2
    assert prune["nonzero_parameters"] < 0.6 * distill["nonzero_parameters"]  # 50 % of the weights, biases kept
    assert final["nonzero_parameters"] < 0.6 * distill["nonzero_parameters"]  # QAT kept the zeros
    assert final["quantization_aware"] and not prune["quantization_aware"]
    for row in (trained, distill, prune, final):
        assert row["metric"] > 0.85
        assert (out / row["tflite"]).stat().st_size == row["int8_bytes"]
        assert read_tflite(out / row["tflite"]).is_fully_integer
        assert row["arena_bytes"] > 0
    assert rows["float"]["float_bytes"] > 2.5 * trained["int8_bytes"]  # 4x on weights, less on the flatbuffer around them
    assert is_quantization_aware(load_model(out / KERAS_MODEL_FILE))
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
