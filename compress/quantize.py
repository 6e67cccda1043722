"""Quantization: quantization-aware training with tfmot, or post-training quantization.

QAT keeps tfmot's quantize wrappers in the model, so deploy converts it with the
ranges it learned instead of re-calibrating. After pruning, the prune-preserving
scheme keeps the zeros; after clustering, the cluster-preserving scheme keeps
the shared values (and the zeros too when the model was also pruned). "ptq"
leaves the model as it is: the int8 converter calibrates it, which is the quick
path with no training.

tfmot folds BatchNorm into convolutions during QAT but not into Dense layers, and
the converter then leaves such a Dense in float: those BatchNorms are folded into
their Dense layers before QAT (exactly, the model computes the same function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuforge.compress.common import CLUSTERS, SPARSITY, CompressStep, Context, TrainingOptions, fine_tune
from mcuforge.config import spec_field

QAT = "qat"
PTQ = "ptq"


@dataclass(frozen=True)
class QuantizeOptions(TrainingOptions):
    mode: str = spec_field(QAT, choices=(QAT, PTQ), help="qat trains with fake quantization; ptq only calibrates")
    learning_rate: float = spec_field(1e-4, min_exclusive=0.0, max=10.0)


def quantize_scheme(preserved: frozenset[str]):
    """The tfmot scheme that preserves what the earlier steps achieved (Context.preserved)."""
    import tensorflow_model_optimization as tfmot

    combine = tfmot.experimental.combine
    if CLUSTERS in preserved:
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=SPARSITY in preserved)
    if SPARSITY in preserved:
        return combine.Default8BitPrunePreserveQuantizeScheme()
    return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()


def _dense_batchnorm_pairs(config: dict) -> dict[str, str]:
    """BatchNorm layer name -> the Dense layer it alone reads, which nothing else reads.

    Read from the model's config, not from layer nodes: tfmot's wrap-and-strip
    steps reuse layer objects, which then carry nodes of several models.
    """
    classes = {layer["name"]: layer["class_name"] for layer in config["layers"]}
    readers: dict[str, int] = {}
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            for reference in node:
                readers[reference[0]] = readers.get(reference[0], 0) + 1
    for reference in config["output_layers"]:
        readers[reference[0]] = readers.get(reference[0], 0) + 1
    pairs = {}
    for layer in config["layers"]:
        nodes = layer["inbound_nodes"]
        if layer["class_name"] != "BatchNormalization" or len(nodes) != 1 or len(nodes[0]) != 1:
            continue
        source = nodes[0][0][0]
        if classes.get(source) == "Dense" and readers[source] == 1:
            pairs[layer["name"]] = source
    return pairs


def fold_dense_batchnorm(model):
    """The same function with every Dense -> BatchNorm pair merged into one Dense (with bias)."""
    import tf_keras

    config = model.get_config()
    pairs = _dense_batchnorm_pairs(config)
    if not pairs:
        return model
    config["layers"] = [layer for layer in config["layers"] if layer["name"] not in pairs]

    def rewire(reference: list) -> list:
        return [pairs.get(reference[0], reference[0]), *reference[1:]]

    for layer in config["layers"]:
        layer["inbound_nodes"] = [[rewire(ref) for ref in node] for node in layer["inbound_nodes"]]
        if layer["name"] in pairs.values():
            layer["config"]["use_bias"] = True
    config["output_layers"] = [rewire(ref) for ref in config["output_layers"]]
    folded = tf_keras.Model.from_config(config)
    dense_to_bn = {dense: bn for bn, dense in pairs.items()}
    for layer in folded.layers:
        source = model.get_layer(layer.name)
        if layer.name not in dense_to_bn:
            layer.set_weights(source.get_weights())
            continue
        bn = model.get_layer(dense_to_bn[layer.name])
        kernel, *bias = source.get_weights()
        bias = bias[0] if bias else np.zeros(kernel.shape[-1], kernel.dtype)
        gamma, beta, mean, variance = bn.get_weights()
        scale = gamma / np.sqrt(variance + bn.epsilon)
        layer.set_weights([kernel * scale, (bias - mean) * scale + beta])
    return folded


def quantize(model, options: QuantizeOptions, context: Context):
    """The QAT model fine-tuned (mode qat), or `model` unchanged for post-training quantization."""
    import tensorflow_model_optimization as tfmot

    if options.mode == PTQ:
        return model
    keras_q = tfmot.quantization.keras
    with keras_q.quantize_scope():
        qat = keras_q.quantize_apply(keras_q.quantize_annotate_model(fold_dense_batchnorm(model)), quantize_scheme(context.preserved))
    fine_tune(qat, context, options)
    return qat


QUANTIZE = CompressStep("quantize", QuantizeOptions, quantize)
