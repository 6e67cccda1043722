"""Quantization: quantization-aware training with tfmot, or post-training quantization.

QAT keeps tfmot's quantize wrappers in the model, so deploy converts it with the
ranges it learned instead of re-calibrating. After pruning, the prune-preserving
scheme keeps the zeros; after clustering, the cluster-preserving scheme keeps
the shared values (and the zeros too when the model was also pruned). "ptq"
leaves the model as it is: the int8 converter calibrates it, which is the quick
path with no training.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcuforge.compress.common import Context, TrainingOptions, fine_tune
from mcuforge.spec import spec_field

QAT = "qat"
PTQ = "ptq"


@dataclass(frozen=True)
class QuantizeOptions(TrainingOptions):
    mode: str = spec_field(QAT, choices=(QAT, PTQ), help="qat trains with fake quantization; ptq only calibrates")
    learning_rate: float = spec_field(1e-4, min_exclusive=0.0, max=10.0)


def quantize_scheme(done: tuple[str, ...]):
    """The tfmot scheme that preserves what the earlier steps achieved."""
    import tensorflow_model_optimization as tfmot

    combine = tfmot.experimental.combine
    if "cluster" in done:
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity="prune" in done)
    if "prune" in done:
        return combine.Default8BitPrunePreserveQuantizeScheme()
    return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()


def quantize(model, options: QuantizeOptions, context: Context):
    """The QAT model fine-tuned (mode qat), or `model` unchanged for post-training quantization."""
    import tensorflow_model_optimization as tfmot

    if options.mode == PTQ:
        return model
    keras_q = tfmot.quantization.keras
    with keras_q.quantize_scope():
        qat = keras_q.quantize_apply(keras_q.quantize_annotate_model(model), quantize_scheme(context.done))
    fine_tune(qat, context, options)
    return qat
