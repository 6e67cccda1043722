"""Model zoo: small tf_keras architectures built only from ops TFLite Micro runs.

Every builder takes `input_shape`, `num_classes` and `width` (a multiplier on
filters and units) plus its own keyword options, and returns an uncompiled
`keras.Model`. Convolutions feeding BatchNorm have no bias: the converter folds
BatchNorm into them, so the int8 model carries one bias per channel.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from mcuforge.errors import MCUForgeError


def _keras():
    import tf_keras

    return tf_keras


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _conv_bn_relu(x, filters, kernel, strides=1, name="", bn_momentum=0.99):
    layers = _keras().layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}conv")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}bn")(x)
    return layers.ReLU(name=f"{name}relu")(x)


def _depthwise_separable(x, filters, strides=1, name="", kernel=3, bn_momentum=0.99):
    layers = _keras().layers
    x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=f"{name}dw")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}dw_bn")(x)
    x = layers.ReLU(name=f"{name}dw_relu")(x)
    return _conv_bn_relu(x, filters, 1, name=f"{name}pw_", bn_momentum=bn_momentum)


def _classifier_head(x, num_classes, dropout=0.0):
    layers = _keras().layers
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Softmax(name="probabilities")(x)


def _require_rank(input_shape, rank: int, arch: str) -> None:
    if len(input_shape) != rank:
        raise MCUForgeError(
            f"model.arch {arch} expects inputs of rank {rank} (without batch). Received input shape {tuple(input_shape)}"
        )


def ds_cnn(input_shape, num_classes, width=1.0, blocks: int = 4, dropout: float = 0.2):
    """MLPerf Tiny's keyword-spotting DS-CNN: a strided conv, then depthwise-separable blocks."""
    keras = _keras()
    _require_rank(input_shape, 3, "ds_cnn")
    filters = _scaled(64, width)
    inputs = keras.Input(shape=input_shape, name="features")
    x = _conv_bn_relu(inputs, filters, (10, 4), strides=2, name="stem_")
    for i in range(blocks):
        x = _depthwise_separable(x, filters, name=f"block{i}_")
    return keras.Model(inputs, _classifier_head(x, num_classes, dropout), name="ds_cnn")


def separable_cnn(
    input_shape,
    num_classes,
    width=1.0,
    stem_channels: int = 64,
    stem_kernel: list = [10, 4],
    stem_stride: int = 2,
    channels: list = [64, 64, 64, 64],
    kernels: list = [3, 3, 3, 3],
    strides: list = [1, 1, 1, 1],
    dropout: float = 0.2,
):
    """A stem convolution, then depthwise-separable blocks each with its own channels, kernel and stride.

    The family architecture search explores: the defaults are ds_cnn's layers, and MobileNet
    v1's first blocks are the point with a 3x3 stem and its channel and stride lists.
    BatchNorm statistics follow with momentum 0.9, not Keras' 0.99: a candidate trained for
    a few epochs of a small data set (digits: 41 steps each) is scored with them, and at
    0.99 they are still near their initial values (measured: float validation accuracy
    stays at chance, 0.097, after 3 epochs on digits; 0.875 at 0.9).
    """
    keras = _keras()
    _require_rank(input_shape, 3, "separable_cnn")
    if not len(channels) == len(kernels) == len(strides) >= 1:
        raise MCUForgeError(
            "model.options: channels, kernels and strides must list one value per block (at least one). "
            f"Received {len(channels)}, {len(kernels)} and {len(strides)} values"
        )
    inputs = keras.Input(shape=input_shape, name="features")
    x = _conv_bn_relu(inputs, _scaled(stem_channels, width), tuple(stem_kernel), strides=stem_stride, name="stem_", bn_momentum=0.9)
    for i, (filters, kernel, stride) in enumerate(zip(channels, kernels, strides)):
        x = _depthwise_separable(x, _scaled(filters, width), strides=stride, name=f"block{i}_", kernel=kernel, bn_momentum=0.9)
    return keras.Model(inputs, _classifier_head(x, num_classes, dropout), name="separable_cnn")


# (pointwise filters, stride) of MobileNet v1's 13 depthwise-separable blocks.
_MOBILENET_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def mobilenet_v1(input_shape, num_classes, width=1.0, blocks: int = 13, dropout: float = 0.0):
    """MobileNet v1 (width = the paper's alpha); `blocks` < 13 truncates it for tiny inputs."""
    keras = _keras()
    _require_rank(input_shape, 3, "mobilenet_v1")
    if not 1 <= blocks <= 13:
        raise MCUForgeError(f"model.options.blocks: expected 1..13 for mobilenet_v1. Received: {blocks}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_relu(inputs, _scaled(32, width), 3, strides=2, name="stem_")
    for i, (filters, stride) in enumerate(_MOBILENET_V1_BLOCKS[:blocks]):
        x = _depthwise_separable(x, _scaled(filters, width), strides=stride, name=f"block{i}_")
    return keras.Model(inputs, _classifier_head(x, num_classes, dropout), name="mobilenet_v1")


def resnet8(input_shape, num_classes, width=1.0):
    """MLPerf Tiny's image-classification ResNet-8: three residual stacks of 16, 32, 64 filters."""
    keras = _keras()
    layers = keras.layers
    _require_rank(input_shape, 3, "resnet8")
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_relu(inputs, _scaled(16, width), 3, name="stem_")
    for stack, (filters, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        filters = _scaled(filters, width)
        name = f"stack{stack}_"
        y = _conv_bn_relu(x, filters, 3, strides=stride, name=f"{name}a_")
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}b_conv")(y)
        y = layers.BatchNormalization(name=f"{name}b_bn")(y)
        if stride != 1 or x.shape[-1] != filters:
            x = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}shortcut_conv")(x)
            x = layers.BatchNormalization(name=f"{name}shortcut_bn")(x)
        x = layers.ReLU(name=f"{name}out_relu")(layers.Add(name=f"{name}add")([x, y]))
    return keras.Model(inputs, _classifier_head(x, num_classes), name="resnet8")


def autoencoder(input_shape, num_classes=0, width=1.0, hidden_layers: int = 4, bottleneck: int = 8):
    """MLPerf Tiny's anomaly-detection dense autoencoder; `num_classes` is unused (it reconstructs)."""
    keras = _keras()
    layers = keras.layers
    _require_rank(input_shape, 1, "autoencoder")
    units = _scaled(128, width)
    inputs = keras.Input(shape=input_shape, name="features")
    x = inputs
    for i, size in enumerate([units] * hidden_layers + [bottleneck] + [units] * hidden_layers):
        x = layers.Dense(size, name=f"dense{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    outputs = layers.Dense(input_shape[0], name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def tiny_cnn(input_shape, num_classes, width=1.0):
    """Two convolutions and a dense layer: enough for 8x8 digits, a few kilobytes in int8."""
    keras = _keras()
    layers = keras.layers
    _require_rank(input_shape, 3, "tiny_cnn")
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(_scaled(16, width), 3, padding="same", activation="relu", name="conv0")(inputs)
    x = layers.Conv2D(_scaled(32, width), 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, layers.Softmax(name="probabilities")(x), name="tiny_cnn")


def gesture_cnn(input_shape, num_classes, width=1.0, dropout: float = 0.1):
    """A small 2-D CNN for rasterized IMU strokes (the magic-wand task)."""
    keras = _keras()
    layers = keras.layers
    _require_rank(input_shape, 3, "gesture_cnn")
    inputs = keras.Input(shape=input_shape, name="stroke")
    x = inputs
    for i, filters in enumerate([8, 16, 32]):
        x = layers.Conv2D(_scaled(filters, width), 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, layers.Softmax(name="probabilities")(x), name="gesture_cnn")


def binary_cnn(input_shape, num_classes, width=1.0, stem_stride: int = 1, dropout: float = 0.0):
    """A binarized CNN (Larq): a float stem convolution, three binary 3x3 convolutions (ste_sign on
    inputs and weights, "one" padding, strides 1, 2, 2) each with batch norm, a float classifier.

    Converted by Larq Compute Engine's converter (deploy/lce.py): the binary layers become LceQuantize
    and LceBconv2d, their batch norms fold into the binary convolutions' output transforms.
    """
    import larq

    keras = _keras()
    layers = keras.layers
    _require_rank(input_shape, 3, "binary_cnn")
    filters = _scaled(64, width)
    inputs = keras.Input(shape=input_shape, name="features")
    x = layers.Conv2D(_scaled(32, width), 3, strides=stem_stride, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    for i, strides in enumerate((1, 2, 2)):
        x = larq.layers.QuantConv2D(
            filters, 3, strides=strides, padding="same", pad_values=1.0, use_bias=False, input_quantizer="ste_sign",
            kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name=f"block{i}_bconv",
        )(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, layers.Softmax(name="probabilities")(x), name="binary_cnn")


# Architectures built from Larq's binary layers, converted by LCE's converter (float I/O, LCE ops).
BINARY_ARCHS = frozenset({"binary_cnn"})

ZOO: dict[str, Callable] = {
    "ds_cnn": ds_cnn,
    "mobilenet_v1": mobilenet_v1,
    "separable_cnn": separable_cnn,
    "resnet8": resnet8,
    "autoencoder": autoencoder,
    "tiny_cnn": tiny_cnn,
    "gesture_cnn": gesture_cnn,
    "binary_cnn": binary_cnn,
}

# Architectures that reconstruct their input (anomaly detection) instead of classifying.
RECONSTRUCTION_ARCHS = frozenset({"autoencoder"})


def check_arch(arch: str, options: dict) -> None:
    """Validate `model.arch` and the names and types of `model.options` without building anything."""
    if arch not in ZOO:
        raise MCUForgeError(f"model.arch: expected one of {', '.join(ZOO)}. Received: {arch!r}")
    params = inspect.signature(ZOO[arch]).parameters
    allowed = [name for name in params if name not in ("input_shape", "num_classes", "width")]
    for key, value in options.items():
        if key not in allowed:
            raise MCUForgeError(
                f"model.options.{key}: unknown option for {arch}. Allowed: {', '.join(allowed) or 'none'}"
            )
        expected = type(params[key].default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise MCUForgeError(
                f"model.options.{key}: expected {expected.__name__} for {arch}. Received: {value!r}"
            )


def build(arch: str, input_shape, num_classes: int, width: float = 1.0, **options):
    """Build zoo model `arch`; options are checked first so errors name the field."""
    check_arch(arch, options)
    return ZOO[arch](tuple(input_shape), num_classes, width, **options)
