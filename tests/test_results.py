"""Every stage's typed result saves as JSON beside its files and loads back equal."""

import json

import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.results import (
    AcceleratorsResult,
    CompressResult,
    DeployResult,
    FirmwareResult,
    FirmwareSize,
    RecipeStep,
    StepRow,
    TrainResult,
)

RESULTS = [
    TrainResult({"task": "classification", "arch": "tiny_cnn", "parameters": 1234, "test": {"accuracy": 0.97, "confusion_matrix": [[1, 0], [0, 1]]}}),
    CompressResult(
        spec="digits",
        metric="accuracy",
        recipe=[RecipeStep("prune", {"sparsity": 0.5, "epochs": 1}), RecipeStep("quantize", {"mode": "qat"})],
        rows=[
            StepRow("float", 0.98, 1000, 990, 5000, float_bytes=6000),
            StepRow("prune", 0.97, 1000, 510, 5000, quantization_aware=False, int8_bytes=2500, compressed_bytes=2000,
                    arena_bytes=900, tflite="1_prune.tflite", layer_sparsity={"conv": 0.5}),
            StepRow("distill (labels only)", 0.9, 100, 99, 500, int8_bytes=800, compressed_bytes=800, side=True),
        ],
    ),
    DeployResult(source_model="/build/x/compress/model.h5", labels="labels.txt"),
    FirmwareResult("qemu-m4", 4, 4, [1000, 1001, 999, 1000], 2048, FirmwareSize(9000, 100, 4000, 5000, 3000, 9100, 5100, 262144, 65536)),
    AcceleratorsResult(),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_round_trip(result, tmp_path):
    path = result.save(tmp_path)
    assert path.parent == tmp_path and path.name == type(result).FILE
    assert type(result).load(tmp_path) == result


def test_train_result_keeps_metrics_at_the_top_of_metrics_json(tmp_path):
    RESULTS[0].save(tmp_path)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["test"]["accuracy"] == 0.97 and stored["model"] == "model.h5"


def test_step_row_sizes():
    float_row, pruned, side = RESULTS[1].rows
    assert (float_row.model_bytes, float_row.flash_bytes) == (6000, 6000)
    assert (pruned.model_bytes, pruned.flash_bytes) == (2500, 2000)
    assert RESULTS[1].chained == [float_row, pruned]


def test_missing_or_wrong_result_is_named(tmp_path):
    with pytest.raises(MCUForgeError, match=r"no FirmwareResult at .*run\.json"):
        FirmwareResult.load(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"board": "qemu-m4"}))
    with pytest.raises(MCUForgeError, match=r"run\.json\.vectors: required key is missing"):
        FirmwareResult.load(tmp_path)
