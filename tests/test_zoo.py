"""Zoo builders: parameter counts computed independently by formula, and tfmot compatibility."""

import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.train import zoo


def conv(kh, kw, cin, cout, bias):
    return kh * kw * cin * cout + (cout if bias else 0)


def bn(channels):
    return 4 * channels  # gamma, beta, moving mean, moving variance


def dense(inputs, units):
    return inputs * units + units


def ds_cnn_params(filters, blocks, classes):
    stem = conv(10, 4, 1, filters, False) + bn(filters)
    block = 3 * 3 * filters + bn(filters) + conv(1, 1, filters, filters, False) + bn(filters)
    return stem + blocks * block + dense(filters, classes)


def resnet8_params(classes):
    total = conv(3, 3, 3, 16, False) + bn(16)
    cin = 16
    for filters in (16, 32, 64):
        total += conv(3, 3, cin, filters, False) + bn(filters) + conv(3, 3, filters, filters, False) + bn(filters)
        if cin != filters:
            total += conv(1, 1, cin, filters, False) + bn(filters)
        cin = filters
    return total + dense(64, classes)


CASES = [
    ("tiny_cnn", (8, 8, 1), 10, 1.0, {}, conv(3, 3, 1, 16, True) + conv(3, 3, 16, 32, True) + dense(4 * 4 * 32, 10)),
    ("ds_cnn", (49, 10, 1), 12, 1.0, {}, ds_cnn_params(64, 4, 12)),
    ("ds_cnn", (49, 10, 1), 12, 0.5, {"blocks": 2}, ds_cnn_params(32, 2, 12)),
    ("resnet8", (32, 32, 3), 10, 1.0, {}, resnet8_params(10)),
    # MLPerf Tiny's anomaly-detection autoencoder (DCASE 2020 baseline) is published at 269,992 parameters.
    ("autoencoder", (640,), 0, 1.0, {}, 269_992),
    (
        "gesture_cnn",
        (32, 32, 1),
        10,
        1.0,
        {},
        conv(3, 3, 1, 8, True) + conv(3, 3, 8, 16, True) + conv(3, 3, 16, 32, True) + dense(4 * 4 * 32, 10),
    ),
]


@pytest.mark.parametrize("arch,shape,classes,width,options,expected", CASES)
def test_parameter_count(arch, shape, classes, width, options, expected):
    model = zoo.build(arch, shape, classes, width, **options)
    assert model.count_params() == expected
    assert tuple(model.input_shape[1:]) == shape


def test_mobilenet_v1_matches_the_published_size():
    # Keras Applications' MobileNet (alpha 1.0, 224x224, 1000 classes) has 4,253,864 parameters.
    model = zoo.build("mobilenet_v1", (224, 224, 3), 1000, 1.0)
    assert model.count_params() == 4_253_864


def test_unknown_arch_and_option_are_named():
    with pytest.raises(MCUForgeError, match=r"model.arch: expected one of .*Received: 'lenet'"):
        zoo.build("lenet", (8, 8, 1), 10)
    with pytest.raises(MCUForgeError, match=r"model.options.depth: unknown option for ds_cnn"):
        zoo.build("ds_cnn", (49, 10, 1), 12, depth=3)
    with pytest.raises(MCUForgeError, match=r"model.options.blocks: expected int"):
        zoo.build("ds_cnn", (49, 10, 1), 12, blocks="four")
    with pytest.raises(MCUForgeError, match=r"expects inputs of rank 1"):
        zoo.build("autoencoder", (8, 8, 1), 0)


TFMOT_CASES = [
    ("tiny_cnn", (8, 8, 1), 10),
    ("ds_cnn", (49, 10, 1), 12),
    ("mobilenet_v1", (32, 32, 3), 4),
    ("resnet8", (32, 32, 3), 10),
    ("autoencoder", (64,), 0),
    ("gesture_cnn", (32, 32, 1), 10),
]


@pytest.mark.parametrize("arch,shape,classes", TFMOT_CASES)
def test_every_zoo_model_wraps_in_tfmot(arch, shape, classes):
    import numpy as np
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_wrapper import QuantizeWrapperV2
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    model = zoo.build(arch, shape, classes, 0.5)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model)
    wrapped = [l for l in pruned.layers if isinstance(l, PruneLowMagnitude)]
    assert wrapped, "no layer was wrapped for pruning"
    quantized = tfmot.quantization.keras.quantize_model(model)
    x = np.zeros((1, *shape), np.float32)
    assert quantized(x).shape == model(x).shape
    assert any(isinstance(l, QuantizeWrapperV2) for l in quantized.layers)
