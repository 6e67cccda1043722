"""Parameter and multiply-accumulate counts of a Keras model, layer by layer.

MACs here count the multiplies of Conv2D, DepthwiseConv2D and Dense layers (the
work a microcontroller spends its time on); deploy/ counts the same from the
converted .tflite, and a test checks the two agree.
"""

from __future__ import annotations

import numpy as np


def layer_macs(layer) -> int:
    """MACs of one layer for a batch of one; 0 for layers without multiply-accumulates."""
    import tf_keras

    L = tf_keras.layers
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        out = layer.output_shape[1:]
        return int(np.prod(out) * kh * kw)
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        in_channels = layer.input_shape[-1] // layer.groups
        return int(np.prod(layer.output_shape[1:]) * kh * kw * in_channels)
    if isinstance(layer, L.Dense):
        rows = int(np.prod(layer.input_shape[1:-1])) if len(layer.input_shape) > 2 else 1
        return rows * layer.input_shape[-1] * layer.units
    return 0


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def model_macs(model) -> int:
    """Total MACs of a (possibly nested) Keras model for a batch of one."""
    return sum(layer_macs(layer) for layer in _leaf_layers(model))
