"""The train stage: real training on digits, artifacts, atomicity and the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcuforge.spec import parse_spec
from mcuforge.train import trainer
from mcuforge.train.datasets import load

REPO = Path(__file__).resolve().parent.parent


def digits_spec(epochs=40, name="digits"):
    return parse_spec(
        {
            "name": name,
            "data": {"dataset": "digits"},
            "model": {"arch": "tiny_cnn"},
            "train": {"epochs": epochs, "batch_size": 32, "learning_rate": 0.003},
        }
    )


def test_digits_split_is_stratified_deterministic_and_disjoint(tmp_path):
    a = load("digits", {}, 0, tmp_path)
    b = load("digits", {}, 0, tmp_path)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape[1:] == (8, 8, 1) and a.x_train.dtype == np.float32
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797  # scikit-learn ships 1,797 digits
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20 % of ~180 per class, stratified
    train_rows = {row.tobytes() for row in a.x_train}
    assert sum(row.tobytes() in train_rows for row in a.x_test) < 5  # only the dataset's own duplicates
    assert not np.array_equal(load("digits", {}, 1, tmp_path).y_test, a.y_test)


def test_digits_trains_to_95_percent(tmp_path):
    result = trainer.train(digits_spec(), tmp_path / "train")
    assert result.metrics["test"]["accuracy"] >= 0.95
    for name in ("model.h5", "model_float.tflite", "metrics.json", "history.json", "training.png"):
        assert (tmp_path / "train" / name).is_file(), name
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    # tiny_cnn on 8x8x1 by hand: conv 8*8*16*9 + conv 4*4*32*9*16 + dense 512*10.
    assert metrics["macs"] == 8 * 8 * 16 * 9 + 4 * 4 * 32 * 9 * 16 + 512 * 10
    assert metrics["parameters"] == 9930
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 360
    assert metrics["float_model_bytes"] == (tmp_path / "train" / "model_float.tflite").stat().st_size
    reloaded = trainer.load_model(tmp_path / "train" / "model.h5")
    data = trainer.load_dataset(digits_spec())
    predicted = reloaded.predict(data.x_test, verbose=0).argmax(-1)
    assert np.mean(predicted == data.y_test) == pytest.approx(metrics["test"]["accuracy"])


def test_failed_training_keeps_the_last_good_output(tmp_path, monkeypatch):
    out = tmp_path / "train"
    trainer.train(digits_spec(epochs=1), out)
    before = (out / "metrics.json").read_bytes()

    def broken_plot(history, path):
        raise RuntimeError("disk full")

    monkeypatch.setattr(trainer, "plot_history", broken_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        trainer.train(digits_spec(epochs=2), out)
    assert (out / "metrics.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]  # no staging leftovers


def run_cli(*args, cwd=REPO):
    return subprocess.run([str(REPO / ".venv" / "bin" / "mcuforge"), *args], capture_output=True, text=True, cwd=cwd)


def test_help_does_not_import_tensorflow():
    code = "import sys, mcuforge.cli; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_bad_spec_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: digits\ndata: {dataset: digits}\nmodel: {arch: tiny_cnn}\ntrain: {epochs: -3}\n")
    result = run_cli("train", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: train.epochs: expected a value >= 1 and <= 10000. Received: -3"


def test_cli_train_and_data(tmp_path):
    spec = tmp_path / "quick.yaml"
    spec.write_text("name: quick\ndata: {dataset: digits}\nmodel: {arch: tiny_cnn, width: 0.5}\ntrain: {epochs: 1}\n")
    result = run_cli("train", str(spec), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["epochs"] == 1
    summary = json.loads(run_cli("data", str(spec)).stdout)
    assert summary["splits"]["test"]["count"] == 360 and summary["input_shape"] == [8, 8, 1]
