"""A binarized (Larq) model end to end: LCE's converter, our engine on the host and under QEMU.

The model is the zoo's binary_cnn with seeded random weights and batch-norm
statistics (no training needed to test exactness), converted by LCE's
converter. The reference is deploy.lce.reference_outputs: LCE's own
interpreter for the LCE ops, TFLM for the float first and last layers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError


@pytest.fixture(scope="module")
def binary_model(tmp_path_factory):
    from mcuforge.deploy.lce import convert_keras
    from mcuforge.train import zoo

    rng = np.random.default_rng(5)
    import tf_keras as keras

    full = zoo.build("binary_cnn", (8, 8, 1), 10, width=0.5)
    # The logits: the float SOFTMAX after them is the float kernels' own business (its exp comes from the C library).
    model = keras.Model(full.input, full.get_layer("logits").output)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and "bn" in layer.name:  # gamma, beta, moving mean, moving variance
            channels = weights[0].shape
            layer.set_weights([rng.uniform(0.5, 2, channels), rng.normal(0, 1, channels), rng.normal(0, 2, channels), rng.uniform(0.5, 4, channels)])
    path = tmp_path_factory.mktemp("binary") / "binary_cnn.tflite"
    path.write_bytes(convert_keras(model))
    return path


def test_engine_equals_the_reference_and_lce_agrees(binary_model):
    from mcuforge.deploy.lce import reference_outputs, run_lce
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.firmware.engine import Engine
    from mcuforge.firmware.prepared import PreparedEngine, prepared_image

    data = binary_model.read_bytes()
    assert {"LceQuantize", "LceBconv2d"} <= set(read_tflite(binary_model).op_names)
    x = np.random.default_rng(1).normal(0, 1, size=(4, 1, 8, 8, 1)).astype(np.float32)
    expected = reference_outputs(data, [x])[0]
    with Engine(data) as engine:
        ours = np.stack([engine.invoke([sample])[0] for sample in x])
    with PreparedEngine.from_image(prepared_image(data, "portable"), "portable") as engine:
        prepared = np.stack([engine.invoke([sample])[0] for sample in x])
    np.testing.assert_array_equal(ours.view(np.int32), expected.view(np.int32))
    np.testing.assert_array_equal(prepared.view(np.int32), expected.view(np.int32))
    # LCE's whole interpreter runs the float layers with LiteRT's optimized kernels: same classes, last bits apart.
    whole = run_lce(data, [x])[0]
    np.testing.assert_array_equal(whole.argmax(-1), expected.argmax(-1))
    np.testing.assert_allclose(whole, expected, atol=1e-5)


def test_export_says_tflm_cannot_run_lce_ops(binary_model, tmp_path):
    from mcuforge.deploy.export import export

    with pytest.raises(MCUForgeError, match=r"uses Larq Compute Engine ops \(.*LceBconv2d.*\), which TFLite Micro cannot run"):
        export(binary_model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_qemu_outputs_equal_the_reference(binary_model, tmp_path):
    from mcuforge.deploy.lce import reference_outputs
    from mcuforge.firmware import build, qemu

    vectors = np.random.default_rng(2).normal(0, 1, size=(2, 8, 8, 1)).astype(np.float32)
    image = build.build_image(binary_model, "qemu-m4", out_dir=tmp_path, inputs=vectors)
    result = qemu.run_qemu(image, timeout=120)
    expected = reference_outputs(binary_model.read_bytes(), [image.vectors.reshape(-1, 1, 8, 8, 1)])[0]
    assert len(result.outputs) == len(expected)
    for got, want in zip(result.outputs, expected):
        np.testing.assert_array_equal(np.asarray(got[0]).reshape(-1).view(np.int32), want.reshape(-1).view(np.int32))


def test_convert_refuses_integer_io_for_binary_models(tmp_path):
    from mcuforge.deploy.convert import convert
    from mcuforge.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "specs" / "digits_binary.yaml")
    spec = replace(spec, deploy=replace(spec.deploy, io_type="int8"))
    with pytest.raises(MCUForgeError, match="deploy.io_type: binary_cnn is converted by Larq Compute Engine with float32"):
        convert(spec, root=tmp_path)
