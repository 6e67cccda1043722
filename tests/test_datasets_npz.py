"""The npz data set: users' own arrays, validated with errors that name the problem."""

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.spec import parse_spec
from mcuforge.train import datasets


def arrays(seed=0, n_train=60, n_test=20, classes=3):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.normal(size=(n_train, 4, 2)).astype(np.float64),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.normal(size=(n_test, 4, 2)),
        "y_test": np.arange(n_test) % classes,
    }


def write(tmp_path, name="data.npz", **content):
    path = tmp_path / name
    np.savez(path, **content)
    return path


def load(path, seed=0, **options):
    return datasets.load("npz", {"path": str(path), **options}, seed, path.parent)


def test_round_trip_with_validation_carved_from_train(tmp_path):
    content = arrays()
    data = load(write(tmp_path, **content))
    assert data.task == datasets.CLASSIFICATION and data.class_names == ["0", "1", "2"]
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.shape == (54, 4, 2) and data.x_val.shape == (6, 4, 2)  # 10 % of 60
    np.testing.assert_array_equal(np.bincount(data.y_val), [2, 2, 2])  # stratified
    np.testing.assert_array_equal(data.x_test, content["x_test"].astype(np.float32))
    # Train and val together are exactly the file's train samples, each once.
    carved = np.concatenate([data.x_train, data.x_val]).reshape(60, -1)
    original = content["x_train"].astype(np.float32).reshape(60, -1)
    assert sorted(map(bytes, carved)) == sorted(map(bytes, original))
    assert "carved from train" in data.notes["validation"]


def test_carving_is_deterministic_per_seed(tmp_path):
    path = write(tmp_path, **arrays())
    np.testing.assert_array_equal(load(path, seed=3).x_val, load(path, seed=3).x_val)
    assert not np.array_equal(load(path, seed=3).x_val, load(path, seed=4).x_val)


def test_explicit_validation_and_class_names_are_used(tmp_path):
    content = arrays()
    content.update(x_val=content["x_test"][:5], y_val=content["y_test"][:5], class_names=np.array(["cat", "dog", "owl"]))
    data = load(write(tmp_path, **content))
    assert data.class_names == ["cat", "dog", "owl"]
    assert len(data.x_train) == 60 and len(data.x_val) == 5
    assert data.notes["validation"] == "from the file"


def test_integer_features_become_float32(tmp_path):
    content = arrays()
    content["x_train"] = (np.arange(60 * 8) % 256).astype(np.uint8).reshape(60, 4, 2)
    content["x_test"] = np.zeros((20, 4, 2), dtype=np.int16)
    data = load(write(tmp_path, **content))
    assert data.x_train.dtype == np.float32 and data.x_train.max() == 255.0


def test_anomaly_task(tmp_path):
    content = arrays()
    content["y_train"] = np.zeros(60, dtype=np.int64)
    content["y_test"] = np.arange(20) % 2
    data = load(write(tmp_path, **content), task="anomaly")
    assert data.task == datasets.ANOMALY and data.class_names == ["normal", "anomalous"]
    assert not data.y_val.any()


def replaced(**changes):
    content = arrays()
    for key, value in changes.items():
        if value is None:
            content.pop(key)
        else:
            content[key] = value
    return content


@pytest.mark.parametrize(
    "content, match",
    [
        (replaced(x_test=None), "no 'x_test' array. An npz data set needs x_train, y_train, x_test, y_test"),
        (replaced(y_train=None), "no 'y_train' array"),
        (replaced(x_valid=np.zeros((3, 4, 2))), "unexpected array 'x_valid'. Allowed: x_train"),
        (replaced(x_val=np.zeros((3, 4, 2))), "has 'x_val' but no 'y_val'. Provide both or neither"),
        (replaced(y_train=np.zeros(59, dtype=np.int64)), "y_train has 59 labels but x_train has 60 samples"),
        (replaced(y_test=np.zeros(21, dtype=np.int64)), "y_test has 21 labels but x_test has 20 samples"),
        (replaced(y_train=np.zeros(60)), r"y_train: expected integer class labels. Received dtype float64"),
        (replaced(y_test=np.zeros((20, 3), dtype=np.int64)), r"y_test: expected one label per sample \(1-D\)"),
        (replaced(y_train=np.full(60, -1)), "y_train: expected labels >= 0. Received -1"),
        (replaced(x_train=np.full((60, 4, 2), "a")), r"x_train: expected real numbers \(int or float\). Received dtype <U1"),
        (replaced(x_test=np.zeros((20, 4, 2), dtype=np.complex64)), "x_test: expected real numbers"),
        (replaced(x_test=np.zeros((20, 8))), r"x_test samples have shape \(8,\) but x_train samples \(4, 2\)"),
        (replaced(x_train=np.zeros(60)), r"x_train: expected a non-empty array \[samples, ...features\]"),
        (replaced(x_train=np.full((60, 4, 2), np.nan)), "x_train: holds NaN or infinite values"),
        (replaced(class_names=np.array(["a", "b"])), "label 2 has no name: class_names has only 2 entries"),
        (replaced(class_names=np.array([1, 2, 3])), "class_names: expected a 1-D array of strings"),
    ],
)
def test_each_problem_gets_its_error(tmp_path, content, match):
    with pytest.raises(MCUForgeError, match=match) as error:
        load(write(tmp_path, **content))
    assert str(tmp_path / "data.npz") in str(error.value)


def test_anomaly_errors(tmp_path):
    with pytest.raises(MCUForgeError, match=r"y_train: an anomaly data set trains on normal samples only \(all 0\)"):
        load(write(tmp_path, **arrays()), task="anomaly")
    content = replaced(y_train=np.zeros(60, dtype=np.int64), y_test=np.arange(20) % 3)
    with pytest.raises(MCUForgeError, match=r"y_test: an anomaly data set labels test samples 0 .* Received labels \[0, 1, 2\]"):
        load(write(tmp_path, **content), task="anomaly")


def test_file_problems(tmp_path):
    with pytest.raises(MCUForgeError, match=r"missing\.npz: file not found"):
        load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(MCUForgeError, match=r"text\.npz: not a readable \.npz archive"):
        load(tmp_path / "text.npz")
    objects = replaced(y_train=np.array([object()] * 60, dtype=object))
    np.savez(tmp_path / "pickled.npz", **objects)
    with pytest.raises(MCUForgeError, match=r"pickled\.npz: holds an object array"):
        load(tmp_path / "pickled.npz")


def test_too_few_training_samples_to_carve_validation(tmp_path):
    content = arrays(n_train=1)
    with pytest.raises(MCUForgeError, match="val_fraction: train has only 1 samples"):
        load(write(tmp_path, **content))


def test_spec_options_are_validated():
    base = {"name": "mine", "data": {"dataset": "npz"}, "model": {"arch": "tiny_cnn"}}
    from mcuforge.train.trainer import check_spec

    with pytest.raises(MCUForgeError, match="data.options.path: required key is missing"):
        check_spec(parse_spec(base))
    with pytest.raises(MCUForgeError, match="data.options.task: expected one of classification, anomaly"):
        check_spec(parse_spec({**base, "data": {"dataset": "npz", "options": {"path": "x.npz", "task": "regression"}}}))


def test_trains_on_a_users_file(tmp_path):
    from mcuforge.train import trainer

    rng = np.random.default_rng(0)
    # Two well-separated classes of 8x8 images: any working pipeline learns them.
    y = np.arange(200) % 2
    x = rng.normal(0, 0.1, (200, 8, 8, 1)) + y[:, None, None, None]
    path = write(tmp_path, x_train=x[:160], y_train=y[:160], x_test=x[160:], y_test=y[160:], class_names=np.array(["off", "on"]))
    spec = parse_spec(
        {
            "name": "mine",
            "data": {"dataset": "npz", "options": {"path": str(path)}},
            "model": {"arch": "tiny_cnn"},
            "train": {"epochs": 5, "batch_size": 16},
        }
    )
    result = trainer.train(spec, tmp_path / "train")
    assert result.metrics["classes"] == ["off", "on"]
    assert result.metrics["test"]["accuracy"] == 1.0
