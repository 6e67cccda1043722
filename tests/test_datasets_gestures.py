"""The gestures data set: the real magic-wand strokes, rasterization by hand, fixed split, errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from mcuforge.config import to_dict
from mcuforge.errors import MCUForgeError
from mcuforge.spec import load_spec, parse_spec
from mcuforge.train import datasets
from mcuforge.train.datasets import gestures

REPO = Path(__file__).resolve().parent.parent
QUICK = {"augment": 1}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return datasets.load("gestures", QUICK, 0, tmp_path_factory.mktemp("cache"))


def test_reads_all_1000_real_strokes():
    strokes, labels = gestures.read_strokes(gestures.strokes_dir())
    # MANIFEST.md: 1,000 labelled strokes, digits 0-9, 100 each.
    assert len(strokes) == 1000
    assert {label: labels.count(label) for label in set(labels)} == {str(d): 100 for d in range(10)}
    assert all(points.ndim == 2 and points.shape[1] == 2 and len(points) >= 10 for points in strokes)


def test_shapes_dtypes_and_stratified_fixed_split(quick, tmp_path):
    assert quick.task == datasets.CLASSIFICATION and quick.class_names == [str(d) for d in range(10)]
    assert quick.x_train.shape == (2 * 720, 32, 32, 1) and quick.x_train.dtype == np.float32
    assert quick.x_val.shape == (80, 32, 32, 1) and quick.x_test.shape == (200, 32, 32, 1)
    assert quick.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(quick.y_test), [20] * 10)
    np.testing.assert_array_equal(np.bincount(quick.y_val), [8] * 10)
    np.testing.assert_array_equal(np.bincount(quick.y_train), [144] * 10)
    assert 0.0 <= quick.x_train.min() and quick.x_train.max() == 1.0
    other_seed = datasets.load("gestures", QUICK, 1, tmp_path)
    np.testing.assert_array_equal(other_seed.x_test, quick.x_test)  # the held-out split never moves
    np.testing.assert_array_equal(other_seed.x_train[:720], quick.x_train[:720])
    assert not np.array_equal(other_seed.x_train[720:], quick.x_train[720:])  # only augmentation does


def test_same_seed_same_arrays(quick, tmp_path):
    again = datasets.load("gestures", QUICK, 0, tmp_path)
    for split in ("x_train", "y_train", "x_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, split), getattr(quick, split))


def test_test_strokes_are_not_in_training(quick):
    training = {image.tobytes() for image in quick.x_train[:720]}
    assert not any(image.tobytes() in training for image in quick.x_test)
    assert not any(image.tobytes() in training for image in quick.x_val)


def test_rasterize_a_horizontal_line_by_hand():
    image = gestures.rasterize(np.array([[0.0, 0.0], [1.0, 0.0]]), size=16, line_width=1)[..., 0]
    # 2 px margins: x spans columns 2..13; the line is centred vertically at row 7.5 -> 8.
    lit = np.argwhere(image > 0)
    assert set(lit[:, 0]) == {8} and set(lit[:, 1]) == set(range(2, 14))
    row = image[8, 2:14]
    # Brightness runs 0.3 -> 1.0 over the 11 px; a pixel keeps its brightest sample (u up to 2.5 rounds to 2).
    assert row[0] == pytest.approx(0.3 + 0.7 * 0.5 / 11) and row[-1] == pytest.approx(1.0) and np.all(np.diff(row) > 0)


def test_rasterize_keeps_orientation_direction_and_aspect():
    # Down the left side, then right along the bottom: an "L", drawn top to bottom-right.
    image = gestures.rasterize(np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]), size=16, line_width=1)[..., 0]
    assert set(map(tuple, np.argwhere(image > 0).tolist())) == {(r, 2) for r in range(2, 14)} | {(13, c) for c in range(2, 14)}
    # Brightness: 0.3 at the first point, 0.65 at the middle one, 1.0 at the last; each leg is 11 px.
    assert image[2, 2] == pytest.approx(0.3 + 0.35 * 0.5 / 11)
    assert image[13, 2] == pytest.approx(0.65 + 0.35 * 0.5 / 11)  # the corner, just after the middle point
    assert image[13, 13] == pytest.approx(1.0)  # last point
    tall = gestures.rasterize(np.array([[0.0, 0.0], [0.1, 3.0]]), size=16, line_width=1)[..., 0]
    columns = set(np.argwhere(tall > 0)[:, 1])
    assert columns <= {7, 8} and len(set(np.argwhere(tall > 0)[:, 0])) == 12  # thin and full height


def test_line_width_thickens_the_pen():
    thin = gestures.rasterize(np.array([[0.0, 0.0], [1.0, 0.0]]), size=16, line_width=1)
    thick = gestures.rasterize(np.array([[0.0, 0.0], [1.0, 0.0]]), size=16, line_width=3)
    assert np.count_nonzero(thick) == 3 * np.count_nonzero(thin)


def test_distortion_is_a_seeded_rotation_about_the_centre():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    rotate_only = gestures.GesturesOptions(rotation_deg=30.0, stretch=0.0, shear=0.0)
    turned = gestures.distort(points, rotate_only, np.random.default_rng(0))
    centre = points.mean(axis=0)
    np.testing.assert_allclose(np.linalg.norm(turned - centre, axis=1), np.linalg.norm(points - centre, axis=1))
    assert not np.allclose(turned, points)
    np.testing.assert_array_equal(turned, gestures.distort(points, rotate_only, np.random.default_rng(0)))


def test_without_the_variable_the_shared_folder_beside_the_repository_is_used(monkeypatch):
    monkeypatch.delenv("MCUFORGE_SHARED", raising=False)
    assert gestures.strokes_dir() == REPO.parent / "shared" / "data" / "magic_wand_digits"


def test_missing_shared_folder_names_the_path_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MCUFORGE_SHARED", str(tmp_path))
    with pytest.raises(MCUForgeError, match=r"no magic-wand stroke files .* Set MCUFORGE_SHARED") as error:
        datasets.load("gestures", {}, 0, tmp_path)
    assert str(tmp_path / "data" / "magic_wand_digits") in str(error.value)


def test_env_variable_points_to_another_copy(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "magic_wand_digits"
    folder.mkdir(parents=True)
    strokes = [{"index": str(i), "label": label, "strokePoints": [{"x": 0.0, "y": 0.0}, {"x": i, "y": 1.0}]}
               for label in ("a", "b") for i in range(10)]
    (folder / "mine.json").write_text(json.dumps({"strokes": strokes}))
    monkeypatch.setenv("MCUFORGE_SHARED", str(tmp_path))
    data = datasets.load("gestures", {"augment": 0, "test_fraction": 0.2}, 0, tmp_path)
    assert data.class_names == ["a", "b"]
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 20
    np.testing.assert_array_equal(np.bincount(data.y_test), [2, 2])


def test_malformed_stroke_file_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "magic_wand_digits"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text(json.dumps({"strokes": [{"label": "1", "points": []}]}))
    monkeypatch.setenv("MCUFORGE_SHARED", str(tmp_path))
    with pytest.raises(MCUForgeError, match=r"broken\.json is not a magic-wand stroke file .*strokePoints"):
        datasets.load("gestures", {}, 0, tmp_path)


@pytest.mark.parametrize(
    "options, match",
    [({"image_size": 8}, "image_size: expected a value >= 12"), ({"augment": -1}, "augment: expected a value >= 0"),
     ({"pen": 2}, "pen: unknown key")],
)
def test_bad_options_name_the_field(options, match):
    with pytest.raises(MCUForgeError, match=match):
        datasets.parse_options("gestures", options)


def test_example_spec_is_valid():
    spec = load_spec(REPO / "specs" / "gestures.yaml")
    assert spec.data.dataset == "gestures" and spec.model.arch == "gesture_cnn"


@pytest.mark.slow
def test_a_small_cnn_reaches_90_percent_on_held_out_strokes(tmp_path):
    from mcuforge.train import trainer

    spec = to_dict(load_spec(REPO / "specs" / "gestures.yaml"))
    spec["data"]["options"]["augment"] = 1  # lighter than the example spec, to keep the suite fast
    spec["train"]["epochs"] = 20
    result = trainer.train(parse_spec(spec), tmp_path / "train")
    assert result.metrics["arch"] == "gesture_cnn"
    assert result.metrics["test"]["accuracy"] >= 0.90
    assert sum(map(sum, result.metrics["test"]["confusion_matrix"])) == 200
