"""The weight quantizer of 4-bit layers: per output channel (depthwise ones too), over the least-error clip.

tfmot's n-bit scheme fake-quantizes weights symmetric and narrow range over
max|w|: per output channel for Conv2D, but per tensor for DepthwiseConv2D (its
per-axis quantizer takes the kernel's last axis, the depth multiplier, 1) and
Dense. At 4 bits (the 15 levels -7..7 of max|w| / 7):
- a per-tensor depthwise kernel gives a channel with small weights a few levels
  only (measured on the keywords DS-CNN's four depthwise layers: 182 of the 256
  channels within -4..4, 7 reaching -7 or 7).
  TF's converter writes depthwise filters per output channel anyway, folding
  BatchNorm into the channel scales, so the kernel is quantized here per output
  channel (input channel x multiplier, the converter's order) and every channel
  gets all 15 levels;
- one outlier stretches the step of every other weight of its channel. The clip
  is chosen instead, at every training step, as the shrink factor of max|w|
  (from SHRINK_FACTORS) whose fake quantization has the least squared error on
  the current weights; weights beyond it sit on the outermost level (and get no
  gradient, as fake quantization gives none outside its range).
Measured on the keywords DS-CNN with its first layer at 4 bits too (README, "4-bit
weights"): tfmot's quantizer lost 3.10 points to the 8-bit model, the clip alone
1.99, the clip with per-channel depthwise kernels 0.05; with per-channel depthwise
kernels, min/max ranges and the clip were alike within the QAT seeds' spread.
Dense kernels stay per tensor, as the converter writes FULLY_CONNECTED filters.

The trained range lives in the quantizer's min/max variables (read when not
training, and by the converter). FourBitQuantizeConfig is registered with Keras
so a saved QAT model reloads with these quantizers: trainer.load_model imports
this module, which is why it lives in train (every stage loads models through
it) rather than beside compress.quantize, its one user when training.

Imports TensorFlow: imported by quantize when it builds a 4-bit model, and by load_model.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras
from tensorflow_model_optimization.python.core.quantization.keras import quantizers
from tensorflow_model_optimization.python.core.quantization.keras.experimental.default_n_bit import (
    default_n_bit_quantize_registry as n_bit_registry,
)

# Fractions of max|w| tried as the clip, largest first (so a tie keeps the min/max range).
SHRINK_FACTORS = np.round(np.arange(1.0, 0.295, -0.01), 2).astype(np.float32)

# How many trailing kernel axes make the output channel: Dense (per tensor), Conv2D, DepthwiseConv2D.
PER_TENSOR, CONV_CHANNELS, DEPTHWISE_CHANNELS = 0, 1, 2


@tf.autograph.experimental.do_not_convert  # no Python control flow to convert
def least_error_clip(columns, num_bits: int):
    """Per column of the 2-D `columns`, the clip whose symmetric narrow fake quantization errs least.

    Rounds as fake quantization does (floor(x / step + 0.5)).
    """
    levels = float(2 ** (num_bits - 1) - 1)
    top = tf.reduce_max(tf.abs(columns), axis=0)
    clips = SHRINK_FACTORS[:, None] * top[None, :]
    steps = tf.where(clips > 0, clips / levels, tf.ones_like(clips))[:, None, :]
    rounded = tf.clip_by_value(tf.floor(columns[None] / steps + 0.5), -levels, levels) * steps
    errors = tf.reduce_sum(tf.square(columns[None] - rounded), axis=1)
    return tf.stop_gradient(tf.gather(SHRINK_FACTORS, tf.argmin(errors, axis=0)) * top)


class LeastErrorWeightQuantizer(quantizers.Quantizer):
    """Symmetric narrow-range fake quantization per output channel (or per tensor), trained over least_error_clip."""

    def __init__(self, num_bits: int, channel_axes: int):
        self.num_bits = num_bits
        self.channel_axes = channel_axes

    def _channels(self, shape) -> int:
        return int(np.prod(shape[len(shape) - self.channel_axes :]))

    def build(self, tensor_shape, name, layer):
        shape = (self._channels(tensor_shape),) if self.channel_axes else ()
        return {
            "min_var": layer.add_weight(name + "_min", shape=shape, initializer=tf_keras.initializers.Constant(-6.0), trainable=False),
            "max_var": layer.add_weight(name + "_max", shape=shape, initializer=tf_keras.initializers.Constant(6.0), trainable=False),
        }

    def __call__(self, inputs, training, weights, **kwargs):
        low, high = weights["min_var"], weights["max_var"]
        if training:
            clip = least_error_clip(tf.reshape(inputs, [-1, self._channels(inputs.shape)]), self.num_bits)
            clip = clip if self.channel_axes else clip[0]
            low, high = low.assign(-clip), high.assign(clip)
        if not self.channel_axes:
            return tf.quantization.fake_quant_with_min_max_vars(inputs, low, high, num_bits=self.num_bits, narrow_range=True)
        # The per-channel op quantizes along the last axis: a depthwise kernel's (input channel, multiplier) become one.
        shape = inputs.shape
        channels_last = tf.reshape(inputs, [*shape[: len(shape) - self.channel_axes], self._channels(shape)])
        quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            channels_last, low, high, num_bits=self.num_bits, narrow_range=True
        )
        return tf.reshape(quantized, shape)

    def get_config(self):
        return {"num_bits": self.num_bits, "channel_axes": self.channel_axes}

    def __eq__(self, other):
        return isinstance(other, LeastErrorWeightQuantizer) and self.get_config() == other.get_config()


@tf_keras.utils.register_keras_serializable(package="mcuforge")
class FourBitQuantizeConfig(n_bit_registry.DefaultNBitQuantizeConfig):
    """The n-bit scheme's QuantizeConfig of a weighted layer (8-bit activations), with LeastErrorWeightQuantizer."""

    def __init__(self, weight_attrs, activation_attrs, quantize_output, channel_axes: int, num_bits_weight=4, num_bits_activation=8):
        super().__init__(weight_attrs, activation_attrs, quantize_output, num_bits_weight, num_bits_activation)
        self.channel_axes = channel_axes
        self.weight_quantizer = LeastErrorWeightQuantizer(num_bits_weight, channel_axes)

    def get_config(self):
        return {**super().get_config(), "channel_axes": self.channel_axes}


def four_bit_config(config, layer):
    """FourBitQuantizeConfig in place of the n-bit registry's `config` for a Conv2D, DepthwiseConv2D or Dense layer.

    Other layers' configs (activations only, or kernels such as Conv2DTranspose's) come back unchanged.
    """
    layers = tf_keras.layers
    if isinstance(layer, layers.DepthwiseConv2D):
        channel_axes = DEPTHWISE_CHANNELS
    elif isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose):
        channel_axes = CONV_CHANNELS
    elif isinstance(layer, layers.Dense):
        channel_axes = PER_TENSOR
    else:
        return config
    return FourBitQuantizeConfig(config.weight_attrs, config.activation_attrs, config.quantize_output, channel_axes)
