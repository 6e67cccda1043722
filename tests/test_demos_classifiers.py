"""Digits and gestures demos: test-split samples classified on the device (QEMU) agree with TFLM, sample by sample.

Oracle: the TFLM host interpreter on the same quantized samples; the
confusion matrix is checked against the true labels counted by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mcuforge.firmware import demos

SPECS = demos.FIRMWARE_DIR.parent / "specs"


def _trained(name: str, epochs: int, tmp_path, **options):
    from mcuforge.deploy.convert import convert_model, representative_sample
    from mcuforge.spec import parse_spec
    from mcuforge.train import trainer

    data = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    data["data"]["options"].update(options)
    data["train"]["epochs"] = epochs
    spec = parse_spec(data)
    dataset = trainer.load_dataset(spec)
    model = trainer.build_model(spec, dataset)
    trainer.fit(model, spec, dataset)
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(convert_model(model, representative_sample(dataset.x_train, 100, seed=0)))
    return spec, path


def _check_against_tflm(spec, path, count, tmp_path):
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.deploy.tflm import Emulator, prepare_input
    from mcuforge.train import trainer

    result = demos.run_test_split(spec, path, count=count, out_dir=tmp_path)
    dataset = trainer.load_dataset(spec)
    emulator = Emulator(read_tflite(path), path.read_bytes())
    samples = prepare_input(dataset.x_test[:count], emulator.inputs[0])
    expected = [emulator.invoke(sample[np.newaxis])[0].reshape(-1) for sample in samples]
    for index, (got, want) in enumerate(zip(result.outputs, expected)):
        np.testing.assert_array_equal(got.reshape(-1).astype(np.int32), want.astype(np.int32), err_msg=f"sample {index}")
    np.testing.assert_array_equal(result.predictions, [int(np.argmax(w)) for w in expected])
    labels = dataset.y_test[:count]
    np.testing.assert_array_equal(result.labels, labels)
    confusion = result.confusion
    assert confusion.sum() == count
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(labels, minlength=len(dataset.class_names)))
    assert np.trace(confusion) == int(np.sum(result.predictions == labels))
    assert f"on {count} test samples" in result.format()
    return result


@pytest.mark.slow
def test_digits_on_the_device_agree_with_tflm(tmp_path):
    spec, path = _trained("digits", epochs=8, tmp_path=tmp_path)
    result = _check_against_tflm(spec, path, count=60, tmp_path=tmp_path)
    assert result.accuracy > 0.7  # 8 epochs of the digits spec learn the task (chance is 0.1)


@pytest.mark.slow
def test_gestures_on_the_device_agree_with_tflm(tmp_path):
    spec, path = _trained("gestures", epochs=3, tmp_path=tmp_path, augment=0)
    result = _check_against_tflm(spec, path, count=40, tmp_path=tmp_path)
    assert result.accuracy > 0.3  # chance is 0.1
