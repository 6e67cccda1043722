"""Magnitude pruning with tfmot: unstructured to a target sparsity, or 2:4 structured (along the
input channels with tfmot; along the window where the input channels do not come in fours; along
the channels at each tap for depthwise kernels when asked: tfmot leaves them dense).

Zeros alone save no flash, RAM or time on a microcontroller (TFLM stores and
multiplies dense tensors); they pay off when the pruned model is clustered or
compressed afterwards, or on kernels that skip them. channel_prune.py is the
step that makes layers smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuforge.compress.common import SPARSITY, CompressStep, Context, TrainingOptions, fine_tune
from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError

UNSTRUCTURED = "unstructured"
TWO_FOUR = "2:4"


@dataclass(frozen=True)
class PruneOptions(TrainingOptions):
    sparsity: float = spec_field(0.5, min=0.0, help="final fraction of zero weights, in [0, 1)")
    pattern: str = spec_field(UNSTRUCTURED, choices=(UNSTRUCTURED, TWO_FOUR))
    depthwise: bool = spec_field(False, help="2:4 also on depthwise kernels, along their channels at each tap "
                                             "(prepared images store them in 2:4; accuracy is the prune step's)")

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise MCUForgeError(
                f"compress.options.prune.sparsity: expected a value >= 0 and < 1 (1 would remove every weight). "
                f"Received: {self.sparsity!r}"
            )

    def check_pattern(self) -> None:
        """2:4 fixes the sparsity at one half: another `sparsity` beside it would be silently ignored, as
        would `depthwise` beside unstructured pruning (which covers depthwise kernels already)."""
        if self.depthwise and self.pattern != TWO_FOUR:
            raise MCUForgeError(
                "compress.options.prune.depthwise: applies to pattern 2:4 only (unstructured pruning covers "
                "depthwise kernels already); drop depthwise or use pattern 2:4"
            )
        if self.pattern == TWO_FOUR and self.sparsity != 0.5:
            raise MCUForgeError(
                f"compress.options.prune.sparsity: pattern 2:4 keeps two of every four weights (sparsity 0.5); "
                f"received {self.sparsity!r}: drop sparsity or use pattern unstructured"
            )


def _supports_two_four(layer) -> bool:
    """tfmot's m-by-n sparsity covers Conv2D and Dense kernels, not depthwise ones."""
    import tf_keras

    return isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)) and not _is_depthwise(layer)


def _two_four_along_windows(layer) -> bool:
    """A Conv2D whose input channels do not come in fours but whose windows do (e.g. 10 x 4 x 1): tfmot
    groups along the input channels and would keep every weight, the engine's 2:4 encoding takes groups
    along the window ([h][w][in] flattened, TFLite's order) too."""
    if not _supports_two_four(layer):
        return False
    shape = tuple(layer.kernel.shape)
    return len(shape) == 4 and shape[-2] % 4 != 0 and int(np.prod(shape[:-1])) % 4 == 0


def two_four_mask(kernel: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """Keep the two largest-magnitude weights of each four consecutive ones of an output channel's
    flattened window (kernel: TF's (..., in, out)); along the input channels where they come in fours.
    A depthwise kernel (h, w, channels, multiplier): of each four consecutive output channels at a tap
    (TFLite's [1][h][w][channels x multiplier])."""
    if depthwise:
        return _depthwise_two_four(np.abs(kernel.reshape(kernel.shape[0] * kernel.shape[1], -1))).reshape(kernel.shape)
    moved = np.moveaxis(kernel, -1, 0)  # TFLite's order: outputs first, input channels innermost
    keep = _top_two(np.abs(moved.reshape(moved.shape[0], -1, 4)))
    return np.moveaxis(keep.reshape(moved.shape), 0, -1)


def _depthwise_two_four(magnitude: np.ndarray) -> np.ndarray:
    """The 2:4 mask of a depthwise kernel's magnitudes (taps, channels): the two largest of each four channels
    at a tap, but no channel loses every tap. Such a channel would be dead (a constant output), and TF's
    converter gives its all-zero filter a near-zero scale whose requantization shift the engine's fastest
    DSP depthwise loop does not take. It keeps its largest tap instead of the weaker kept weight of that
    group whose channel keeps another tap."""
    taps, channels = magnitude.shape
    keep = _top_two(magnitude.reshape(taps, channels // 4, 4)).reshape(taps, channels)
    for channel in np.flatnonzero(~keep.any(axis=0) & (magnitude.max(axis=0) > 0)):
        tap = int(np.argmax(magnitude[:, channel]))
        group = range(channel - channel % 4, channel - channel % 4 + 4)
        spare = [c for c in group if keep[tap, c] and keep[:, c].sum() > 1]
        if spare:
            keep[tap, min(spare, key=lambda c: magnitude[tap, c])] = False
            keep[tap, channel] = True
    return keep


def _top_two(groups: np.ndarray) -> np.ndarray:
    """The two largest of each four along the last axis (the first of equal ones)."""
    return np.argsort(np.argsort(-groups, axis=-1, kind="stable"), axis=-1, kind="stable") < 2


def _window_two_four_callback(layers):
    """Magnitude 2:4 along the windows (depthwise: the channels) of `layers`, chosen again after every
    training batch (as tfmot's m-by-n mask is at each pruning step), so the weights end 2:4 and the kept
    ones are the largest."""
    import tf_keras

    class WindowTwoFour(tf_keras.callbacks.Callback):
        def apply(self, *_):
            for layer in layers:
                kernel = _kernel(layer).numpy()
                _kernel(layer).assign(kernel * two_four_mask(kernel, _is_depthwise(layer)))

        on_train_begin = on_train_batch_end = apply

    return WindowTwoFour()


def _is_depthwise(layer) -> bool:
    import tf_keras

    return isinstance(layer, tf_keras.layers.DepthwiseConv2D)


def _two_four_along_channels(layer) -> bool:
    """A DepthwiseConv2D whose output channels come in fours: the engine stores its kernel in 2:4 along
    them ([h][w][channels] flattened, TFLite's order), four channels of one tap a group."""
    if not _is_depthwise(layer):
        return False
    shape = tuple(layer.depthwise_kernel.shape)  # (h, w, channels, multiplier)
    return shape[-2] * shape[-1] % 4 == 0


def _kernel(layer):
    """The weight variable 2:4 masks: a depthwise layer's depthwise kernel, else the kernel."""
    return layer.depthwise_kernel if _is_depthwise(layer) else layer.kernel


def prune(model, options: PruneOptions, context: Context):
    """Prune and fine-tune `model`; returns it with the pruning wrappers stripped."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sparsity = tfmot.sparsity.keras
    data = context.dataset
    steps_per_epoch = max(1, int(np.ceil(len(data.x_train) / context.spec.train.batch_size)))
    frequency = max(1, steps_per_epoch // 2)
    # The masks reach the final sparsity at the last update that falls inside training.
    end_step = frequency * max(1, (steps_per_epoch * options.epochs - 1) // frequency)
    if options.pattern == TWO_FOUR:
        schedule = sparsity.ConstantSparsity(0.5, begin_step=0, frequency=frequency)

        along_windows = []

        def wrap(layer):
            if _two_four_along_windows(layer) or (options.depthwise and _two_four_along_channels(layer)):
                along_windows.append(layer)
                return layer  # masked by the callback below
            if _supports_two_four(layer):
                return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule, sparsity_m_by_n=(2, 4))
            return layer  # reused as is, weights included

        wrapped = tf_keras.models.clone_model(model, clone_function=wrap)
        callbacks = [_window_two_four_callback(along_windows)]
    else:
        schedule = sparsity.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=options.sparsity, begin_step=0, end_step=end_step, frequency=frequency
        )
        wrapped = sparsity.prune_low_magnitude(model, pruning_schedule=schedule)
        callbacks = []
    fine_tune(wrapped, context, options, callbacks=[sparsity.UpdatePruningStep(), *callbacks])
    return sparsity.strip_pruning(wrapped)


def layer_sparsity(model) -> dict[str, float]:
    """Fraction of zeros in each Conv2D / DepthwiseConv2D / Dense kernel, by layer name."""
    import tf_keras

    L = tf_keras.layers
    result = {}
    for layer in model.layers:
        if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense)):
            kernel = layer.get_weights()[0]
            result[layer.name] = float(np.mean(kernel == 0))
    return result


PRUNE = CompressStep(
    "prune",
    PruneOptions,
    prune,
    must_precede={
        "cluster": "pruning after clustering breaks the shared weights (cluster keeps the zeros of an earlier prune)",
        "quantize": "tfmot cannot prune a quantization-aware model (quantize after pruning keeps the zeros)",
    },
    preserves=SPARSITY,
    check=lambda options, model_arch: options.check_pattern(),
    details=lambda before, after: {"layer_sparsity": layer_sparsity(after)},
)
