"""Keras -> int8 TFLite conversion checked in TFLM against the float Keras model, and the digits pipeline end to end."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import REPO
from mcuforge.deploy.convert import convert_model, is_quantization_aware, representative_sample
from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.deploy.tflm import Emulator, dequantize, prepare_input
from mcuforge.errors import MCUForgeError


@pytest.fixture(scope="module")
def tiny():
    """A small trained conv classifier on separable synthetic data, with its data."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(0, 0.3, (300, 8, 8, 1)).astype(np.float32)
    for cls in range(3):
        x[y == cls, cls * 2 : cls * 2 + 3, :, 0] += 1.0  # a bright band whose row gives the class
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    return model, x, y


def run_tflm(data: bytes, x: np.ndarray) -> np.ndarray:
    model = parse_tflite(data)
    emulator = Emulator(model, data)
    return dequantize(emulator.run(prepare_input(x, emulator.inputs[0]))[0], emulator.outputs[0])


def test_int8_conversion_tracks_the_float_model(tiny):
    model, x, y = tiny
    data = convert_model(model, representative_sample(x, 100, 0), "int8", "int8")
    tflite = parse_tflite(data)
    assert tflite.is_fully_integer
    assert [t.dtype for t in tflite.main.input_tensors + tflite.main.output_tensors] == ["int8", "int8"]
    conv = next(op for op in tflite.main.operators if op.opcode == "CONV_2D")
    filters = tflite.main.tensors[conv.inputs[1]]
    assert filters.dtype == "int8" and len(filters.quantization.scales) == 6  # per-channel weights
    reference = model.predict(x[:100], verbose=0)
    got = run_tflm(data, x[:100])
    assert np.abs(got - reference).max() < 0.06  # softmax output step is 1/256
    assert np.mean(got.argmax(1) == reference.argmax(1)) >= 0.97


def test_int16x8_has_int16_activations_and_is_closer(tiny):
    model, x, _ = tiny
    sample = representative_sample(x, 100, 0)
    data = convert_model(model, sample, "int16x8", "int8")
    tflite = parse_tflite(data)
    assert [t.dtype for t in tflite.main.input_tensors + tflite.main.output_tensors] == ["int16", "int16"]
    reference = model.predict(x[:100], verbose=0)
    error16 = np.abs(run_tflm(data, x[:100]) - reference).mean()
    error8 = np.abs(run_tflm(convert_model(model, sample, "int8", "int8"), x[:100]) - reference).mean()
    assert error16 < error8


def test_float_io_keeps_float_edges(tiny):
    model, x, _ = tiny
    data = convert_model(model, representative_sample(x, 50, 0), "int8", "float32")
    tflite = parse_tflite(data)
    assert [t.dtype for t in tflite.main.input_tensors + tflite.main.output_tensors] == ["float32", "float32"]
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(tflite.op_names)
    assert np.abs(run_tflm(data, x[:20]) - model.predict(x[:20], verbose=0)).max() < 0.06


def test_representative_sample_is_seeded_and_bounded():
    x = np.arange(50, dtype=np.float32).reshape(50, 1)
    assert np.array_equal(representative_sample(x, 10, 3), representative_sample(x, 10, 3))
    assert not np.array_equal(representative_sample(x, 10, 3), representative_sample(x, 10, 4))
    assert len(representative_sample(x, 500, 0)) == 50


def test_quantization_aware_model_converts_without_calibration(tiny):
    import tensorflow_model_optimization as tfmot

    model, x, y = tiny
    assert not is_quantization_aware(model)
    qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert is_quantization_aware(qat)
    data = convert_model(qat, None, "int8", "int8")
    assert parse_tflite(data).is_fully_integer
    assert np.abs(run_tflm(data, x[:50]) - qat.predict(x[:50], verbose=0)).max() < 0.06


def test_op_tflm_lacks_is_named():
    import tensorflow as tf
    import tf_keras as keras

    inputs = keras.Input((8,))
    values, _ = tf.math.top_k(keras.layers.Dense(4)(inputs), 2)
    data = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, values)).convert()
    with pytest.raises(MCUForgeError, match=r"TFLM cannot run .*op TOPK_V2 \(version 1\) is not in TFLM"):
        Emulator(parse_tflite(data, "topk.tflite"), data)


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory):
    """The digits spec trained for 3 epochs into a temporary build root."""
    import yaml

    from mcuforge.spec import parse_spec
    from mcuforge.train.trainer import train

    data = yaml.safe_load((REPO / "specs" / "digits.yaml").read_text())
    data["train"]["epochs"] = 3
    spec = parse_spec(data)
    root = tmp_path_factory.mktemp("build")
    train(spec, spec.build_dir(root) / "train")
    return spec, root


def test_digits_convert_evaluate_export_emulate_golden_report(digits_build, tmp_path):
    from mcuforge.deploy.convert import convert
    from mcuforge.deploy.emulate import emulate
    from mcuforge.deploy.evaluate import evaluate
    from mcuforge.deploy.export import export
    from mcuforge.deploy.golden import record, verify
    from mcuforge.deploy.report import build_report
    from mcuforge.train.trainer import load_dataset

    spec, root = digits_build
    result = convert(spec, root)
    assert result.model_path == root / "digits" / "deploy" / "model_int8.tflite"
    assert not result.quantization_aware and result.source_model.name == "model.h5"
    labels = (result.model_path.parent / "labels.txt").read_text().split()
    assert labels == [str(d) for d in range(10)]
    info = json.loads((result.model_path.parent / "convert.json").read_text())
    assert info["representative_samples"] == 200 and info["size"] == result.model_path.stat().st_size

    evaluation = evaluate(spec, root)
    metrics = json.loads((root / "digits" / "train" / "metrics.json").read_text())
    assert evaluation.samples == 360 and evaluation.metric == "accuracy"
    assert evaluation.float_keras == pytest.approx(metrics["test"]["accuracy"])  # the trainer's own float figure
    assert abs(evaluation.drop) <= 0.02
    assert evaluation.litert.elements == 3600 and evaluation.litert.differing_predictions <= 3
    assert evaluation.litert_reference.differing_elements == 0  # LiteRT's reference kernels share TFLM's arithmetic

    dataset = load_dataset(spec)
    emulated = emulate(result.model_path, dataset.x_test[:20], tmp_path / "y.npy", k=2)
    assert np.load(tmp_path / "y.npy").dtype == np.int8
    assert [top[0][0] for top in emulated.top_k] == [str(i) for i in emulated.values.argmax(1)]

    exported = export(result.model_path, tmp_path / "src", "digits")
    settings = (tmp_path / "src" / "digits_model_settings.h").read_text()
    assert 'kDigitsLabels[kDigitsLabelCount] = {"0", "1"' in settings
    assert exported.ops == ("CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX")

    recorded = record(result.model_path, tmp_path / "golden", dataset.x_test[:8])
    assert verify(result.model_path, tmp_path / "golden").samples == 8 == recorded.samples

    report = build_report(result.model_path, "cortex-m0plus-264k")
    assert report.flash_bytes == result.size and report.fit_problems == []
    # The trainer counts MACs and parameters on the Keras layers; the report counts them on the .tflite.
    assert report.macs == metrics["macs"] and report.parameters == metrics["parameters"]


def test_evaluate_scores_extra_evaluation_sets(digits_build, monkeypatch):
    from mcuforge.deploy.convert import convert
    from mcuforge.deploy.emulate import emulate
    from mcuforge.deploy.evaluate import evaluate, read_evaluation
    from mcuforge.html_report import write_html_report
    from mcuforge.results import DeployResult
    from mcuforge.train import trainer

    spec, root = digits_build
    model_path = convert(spec, root).model_path
    dataset = trainer.load_dataset(spec)
    x, y = dataset.x_test[:30], dataset.y_test[:30]
    with_extra = dataclasses.replace(dataset, extra_eval={"recorded": (x, y)})
    monkeypatch.setattr(trainer, "load_dataset", lambda loaded_spec: with_extra)
    result = evaluate(spec, root)
    expected = float(np.mean(emulate(model_path, x).raw.argmax(1) == y))
    assert result.extra["recorded"].samples == 30 and result.extra["recorded"].tflm == expected
    assert json.loads((model_path.parent / "evaluation.json").read_text())["extra"]["recorded"]["tflm"] == expected
    # The TFLM confusion matrix, from TFLM's own predictions counted here, loads back typed and reaches the report.
    predicted = emulate(model_path, x).raw.argmax(1)
    matrix = [[int(np.sum((y == t) & (predicted == p))) for p in range(10)] for t in range(10)]
    assert result.extra["recorded"].confusion_matrix == matrix
    assert read_evaluation(model_path.parent / "evaluation.json") == result
    DeployResult(source_model="train/model.h5").save(model_path.parent)  # what the deploy stage records beside them
    page = write_html_report(spec, root).read_text()
    assert "Extra evaluation set: recorded" in page
    for t in range(10):
        clips, right = sum(matrix[t]), matrix[t][t]
        if clips:
            assert f"<td>{result.extra['recorded'].class_names[t]}</td><td>{clips}</td><td>{right}</td><td>{right / clips:.3f}</td>" in page


def test_convert_stops_before_writing_when_the_target_is_too_small(digits_build, monkeypatch):
    from mcuforge.deploy import convert as convert_module
    from mcuforge.deploy.targets import Target

    spec, root = digits_build
    spec = dataclasses.replace(spec, name="digits-small")
    (spec.build_dir(root)).mkdir()
    (spec.build_dir(root) / "train").symlink_to(root / "digits" / "train")
    monkeypatch.setattr(convert_module, "load_target", lambda name: Target(name="tiny-mcu", cpu="cortex-m0", flash_bytes=4096, ram_bytes=2048))
    with pytest.raises(MCUForgeError, match=r"does not fit target tiny-mcu: flash: the model needs \d+ bytes, tiny-mcu has 4096; RAM: the tensor arena needs \d+ bytes, tiny-mcu has 2048"):
        convert_module.convert(spec, root)
    assert not (spec.build_dir(root) / "deploy").exists()


def test_convert_without_a_trained_model(tmp_path):
    import yaml

    from mcuforge.deploy.convert import convert
    from mcuforge.spec import parse_spec

    spec = parse_spec(yaml.safe_load((REPO / "specs" / "digits.yaml").read_text()))
    with pytest.raises(MCUForgeError, match=r"no model for spec 'digits' .*run `mcuforge train SPEC` first"):
        convert(spec, tmp_path)


@pytest.mark.slow
def test_vibration_autoencoder_reports_auc(tmp_path):
    from mcuforge.deploy.convert import convert
    from mcuforge.deploy.evaluate import evaluate
    from mcuforge.spec import parse_spec
    from mcuforge.train.trainer import load_dataset, train

    options = {"train_windows": 200, "val_windows": 50, "test_normal_windows": 60, "test_faulty_windows": 60}
    spec = parse_spec(
        {
            "name": "vibration",
            "data": {"dataset": "vibration", "seed": 0, "options": options},
            "model": {"arch": "autoencoder"},
            "train": {"epochs": 2, "batch_size": 32},
        }
    )
    trained = train(spec, spec.build_dir(tmp_path) / "train")
    assert convert(spec, tmp_path).quantization == "int8"
    result = evaluate(spec, tmp_path)
    assert result.metric == "auc" and result.samples == 120
    assert result.float_keras == pytest.approx(trained.metrics["test"]["auc"])
    assert abs(result.drop) <= 0.03
    features = int(np.prod(load_dataset(spec).input_shape))  # the autoencoder reconstructs its input
    assert result.litert.differing_predictions is None and result.litert.elements == 120 * features
    assert result.litert_reference.max_abs_difference <= 2  # rounding choices only, never a wrong kernel


@pytest.mark.slow
def test_keywords_ds_cnn_converts_and_keeps_goldens(tmp_path):
    """A tiny keyword spotter (2 words, 4 synthesized speakers, 2 epochs): the ds_cnn ops through TFLM."""
    from mcuforge.deploy.convert import convert
    from mcuforge.deploy.evaluate import evaluate
    from mcuforge.deploy.export import export
    from mcuforge.deploy.golden import record, verify
    from mcuforge.deploy.report import build_report
    from mcuforge.spec import parse_spec
    from mcuforge.train.trainer import load_dataset, load_model, train

    options = {
        "words": ["yes", "no"], "unknown_words": ["cat", "dog"], "engines": ["espeak-ng"],
        "speakers": 4, "repetitions": 2, "val_share": 0.25, "test_share": 0.25,
    }
    spec = parse_spec(
        {
            "name": "keywords",
            "data": {"dataset": "keywords", "seed": 0, "options": options},
            "model": {"arch": "ds_cnn", "width": 0.5},
            "train": {"epochs": 2, "batch_size": 16},
        }
    )
    trained = train(spec, spec.build_dir(tmp_path) / "train")
    result = convert(spec, tmp_path)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(result.ops)
    assert build_report(result.model_path).macs == trained.metrics["macs"]  # Keras-layer count, train/profile.py
    dataset = load_dataset(spec)
    reference = load_model(result.source_model).predict(dataset.x_test, verbose=0)
    tflm = run_tflm(result.model_path.read_bytes(), dataset.x_test)
    assert np.abs(tflm - reference).max() < 0.1  # a few output steps of 1/256 on every class of every test clip
    assert evaluate(spec, tmp_path).samples == len(dataset.x_test)
    record(result.model_path, tmp_path / "golden", dataset.x_test)
    assert verify(result.model_path, tmp_path / "golden").samples == len(dataset.x_test)
    settings = (export(result.model_path, tmp_path / "src", "kws").directory / "kws_model_settings.h").read_text()
    assert 'kKwsLabels[kKwsLabelCount] = {"_silence_", "_unknown_", "yes", "no"};' in settings


def _save_digits_model(path, filters):
    """An untrained conv model on the digits input; `filters` sets its size, so the two models convert to different bytes."""
    import tf_keras as keras

    from mcuforge.train.trainer import save_model

    keras.utils.set_random_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(
        keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(filters, 3), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]),
        path,
    )


@pytest.mark.parametrize("compress_output_is", ["older", "newer"])
def test_spec_without_compress_steps_converts_the_trained_model(tmp_path, compress_output_is):
    import os

    import yaml

    from mcuforge.deploy.convert import convert
    from mcuforge.spec import parse_spec

    data = yaml.safe_load((REPO / "specs" / "digits.yaml").read_text())
    data["compress"] = {"steps": []}
    spec = parse_spec(data)
    layout = spec.layout(tmp_path)
    trained, stale = layout.train / "model.h5", layout.compress / "model.h5"
    _save_digits_model(trained, filters=2)
    _save_digits_model(stale, filters=16)
    age = {"older": -100, "newer": 100}[compress_output_is]
    os.utime(stale, (trained.stat().st_mtime + age,) * 2)

    result = convert(spec, tmp_path)
    assert result.source_model == trained
    assert json.loads((layout.deploy / "convert.json").read_text())["source_model"] == str(trained)
    explicit = convert(spec, tmp_path, source=stale, out_dir=tmp_path / "from-stale")
    assert explicit.size > result.size  # 16 filters against 2: the stale model would have shown
