"""4-bit weight quantizers whose range is the one with least quantization error, not the weights' min/max.

tfmot's n-bit scheme fake-quantizes weights over max|w| (per output channel for
convolutions, per tensor otherwise): symmetric, narrow range, so 4 bits give the
15 levels -7..7 of max|w| / 7. One outlier then stretches the step for every
other weight of its channel. Here the clip is chosen instead, at every training
step, as the shrink factor of max|w| (from SHRINK_FACTORS) whose fake
quantization has the least squared error on the current weights; weights beyond
it are clipped to the outermost level (and get no gradient, as fake quantization
gives none outside its range).

The chosen range is written to the quantizer's own min/max variables, which
tfmot's quantizer reads when not training: a saved model, reloaded without this
module (the QuantizeConfig that names the quantizer is tfmot's own, which
rebuilds its min/max quantizer), converts to the same INT4 values.

Imports TensorFlow: imported by quantize only when it builds a 4-bit model.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_model_optimization.python.core.quantization.keras import quantizers
from tensorflow_model_optimization.python.core.quantization.keras.experimental.default_n_bit import (
    default_n_bit_quantize_registry as n_bit_registry,
)
from tensorflow_model_optimization.python.core.quantization.keras.experimental.default_n_bit import (
    default_n_bit_quantizers as n_bit_quantizers,
)

# Fractions of max|w| tried as the clip, largest first (so a tie keeps the min/max range).
SHRINK_FACTORS = np.round(np.arange(1.0, 0.295, -0.01), 2).astype(np.float32)


def least_error_clip(weights, per_axis: bool, num_bits: int):
    """The clip (per last-axis channel when per_axis, else one) whose symmetric narrow fake quantization errs least.

    Rounds as fake quantization does (half away from zero on the magnitude: floor(x + 0.5)).
    """
    levels = float(2 ** (num_bits - 1) - 1)
    columns = tf.reshape(weights, [-1, weights.shape[-1]] if per_axis else [-1, 1])
    top = tf.reduce_max(tf.abs(columns), axis=0)
    clips = SHRINK_FACTORS[:, None] * top[None, :]
    steps = tf.where(clips > 0, clips / levels, tf.ones_like(clips))[:, None, :]
    rounded = tf.clip_by_value(tf.floor(columns[None] / steps + 0.5), -levels, levels) * steps
    errors = tf.reduce_sum(tf.square(columns[None] - rounded), axis=1)
    chosen = tf.gather(SHRINK_FACTORS, tf.argmin(errors, axis=0)) * top
    return tf.stop_gradient(chosen if per_axis else chosen[0])


class LeastErrorRangeQuantizer(quantizers.LastValueQuantizer):
    """LastValueQuantizer (symmetric, narrow range) that trains over least_error_clip instead of max|w|."""

    def __call__(self, inputs, training, weights, **kwargs):
        if not training:
            return super().__call__(inputs, training, weights, **kwargs)
        clip = least_error_clip(inputs, self.per_axis, self.num_bits)
        low = weights["min_var"].assign(-clip)
        high = weights["max_var"].assign(clip)
        if self.per_axis:
            return tf.quantization.fake_quant_with_min_max_vars_per_channel(
                inputs, low, high, num_bits=self.num_bits, narrow_range=True
            )
        return tf.quantization.fake_quant_with_min_max_vars(inputs, low, high, num_bits=self.num_bits, narrow_range=True)


class LeastErrorRangeConvQuantizer(LeastErrorRangeQuantizer, n_bit_quantizers.DefaultNBitConvWeightsQuantizer):
    """The n-bit scheme's per-channel convolution weight quantizer (its variables), trained over least_error_clip."""


def with_least_error_range(config):
    """`config` (an n-bit scheme QuantizeConfig, fresh from its registry) with its weight quantizer trained over least_error_clip.

    Configs without weights (activations only) come back unchanged.
    """
    if not isinstance(config, n_bit_registry.DefaultNBitQuantizeConfig):
        return config
    quantizer = config.weight_quantizer
    if isinstance(quantizer, n_bit_quantizers.DefaultNBitConvWeightsQuantizer):
        config.weight_quantizer = LeastErrorRangeConvQuantizer(quantizer.num_bits, 8)
    else:
        config.weight_quantizer = LeastErrorRangeQuantizer(quantizer.num_bits, quantizer.per_axis, True, True)
    return config
