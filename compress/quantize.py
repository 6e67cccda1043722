"""Quantization: quantization-aware training with tfmot, or post-training quantization.

QAT keeps tfmot's quantize wrappers in the model, so deploy converts it with the
ranges it learned instead of re-calibrating. After pruning, the prune-preserving
scheme keeps the zeros; after clustering, the cluster-preserving scheme keeps
the shared values (and the zeros too when the model was also pruned). "ptq"
leaves the model as it is: the int8 converter calibrates it, which is the quick
path with no training.

weight_bits 4 trains with tfmot's n-bit scheme (4-bit weights, 8-bit
activations), from which TF's converter writes packed INT4 filters (two values
a byte) for CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED; the 4-bit layers'
weights are fake-quantized by train.weight_range's quantizer (per output channel,
depthwise ones too, over the least-error clip), not the scheme's. The first and last
layers with weights stay at 8 bits unless layer_weight_bits says otherwise:
they are the ones 4 bits hurt most and weigh least. tfmot 0.8's sparsity and
cluster preserving schemes are 8-bit only, so 4-bit QAT after prune or cluster
fine-tunes every weight and keeps neither the zeros nor the shared values.

tfmot folds BatchNorm into convolutions during QAT but not into Dense layers, and
the converter then leaves such a Dense in float: those BatchNorms are folded into
their Dense layers before QAT (exactly, the model computes the same function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuforge.compress.common import CLUSTERS, SPARSITY, CompressStep, Context, TrainingOptions, fine_tune
from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError

QAT = "qat"
PTQ = "ptq"
WEIGHT_BITS = (4, 8)


@dataclass(frozen=True)
class QuantizeOptions(TrainingOptions):
    mode: str = spec_field(QAT, choices=(QAT, PTQ), help="qat trains with fake quantization; ptq only calibrates")
    learning_rate: float = spec_field(1e-4, min_exclusive=0.0, max=10.0)
    weight_bits: int = spec_field(8, choices=WEIGHT_BITS, help="bits of conv and dense weights (4: packed INT4, QAT only)")
    layer_weight_bits: dict[str, int] = spec_field(
        {}, help="weight bits per layer name, over weight_bits (first and last weighted layers default to 8)"
    )


def check_options(options: QuantizeOptions, arch: str) -> None:
    """4-bit weights need QAT (the converter only packs INT4 from fake-quantized weights); bits are 4 or 8."""
    for name, bits in options.layer_weight_bits.items():
        if bits not in WEIGHT_BITS:
            raise MCUForgeError(
                f"compress.options.quantize.layer_weight_bits.{name} must be 4 or 8, got {bits}: set it to 4 or 8"
            )
    if options.mode == PTQ and (options.weight_bits != 8 or 4 in options.layer_weight_bits.values()):
        raise MCUForgeError(
            "compress.options.quantize: 4-bit weights need mode qat (post-training quantization writes int8 weights): "
            "set mode: qat or weight_bits: 8"
        )


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


def weighted_layers(model) -> list[str]:
    """Names of the layers with conv or dense weights, in graph order (the ones weight_bits applies to)."""
    import tf_keras

    kinds = (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D, tf_keras.layers.Dense)
    return [layer.name for layer in model.layers if isinstance(layer, kinds)]


def layer_weight_bits(model, options: QuantizeOptions) -> dict[str, int]:
    """Weight bits of each weighted layer: weight_bits, 8 for the first and last, then the per-layer overrides."""
    names = weighted_layers(model)
    unknown = sorted(set(options.layer_weight_bits) - set(names))
    if unknown:
        raise MCUForgeError(
            f"compress.options.quantize.layer_weight_bits names {', '.join(unknown)}, not a conv or dense layer "
            f"of the model: use one of {', '.join(names)}"
        )
    bits = {name: options.weight_bits for name in names}
    for edge in (names[:1] + names[-1:]) if options.weight_bits != 8 else []:
        bits[edge] = 8
    return {**bits, **options.layer_weight_bits}


def mixed_bits_scheme(bits: dict[str, int]):
    """tfmot's n-bit scheme (4-bit weights, 8-bit activations) whose registry gives the layers `bits` marks 8 an 8-bit config.

    The choice is made in the registry, not by annotating layers with their own
    config: the layout transforms that keep fake quantization out of Conv ->
    BatchNorm -> ReLU skip layers annotated that way, and the converter then
    cannot fold their BatchNorm.
    """
    import tensorflow_model_optimization as tfmot

    from mcuforge.train.weight_range import four_bit_config

    keras_q = tfmot.quantization.keras
    n_bit = keras_q.experimental.default_n_bit

    def registry(weight_bits: int):
        # A fresh one per config: tfmot 0.8's registries write their bits into one
        # table shared by every instance, so the last one built decides for all.
        return n_bit.DefaultNBitQuantizeRegistry(num_bits_weight=weight_bits, num_bits_activation=8)

    class MixedBitsRegistry(keras_q.QuantizeRegistry):
        def supports(self, layer):
            return registry(4).supports(layer)

        def get_quantize_config(self, layer):
            weight_bits = bits.get(layer.name, 4)
            config = registry(weight_bits).get_quantize_config(layer)
            return four_bit_config(config, layer) if weight_bits == 4 else config

    class MixedBitsScheme(n_bit.DefaultNBitQuantizeScheme):
        def get_quantize_registry(self):
            return MixedBitsRegistry()

    return MixedBitsScheme(num_bits_weight=4, num_bits_activation=8)


def quantize(model, options: QuantizeOptions, context: Context):
    """The QAT model fine-tuned (mode qat), or `model` unchanged for post-training quantization."""
    import tensorflow_model_optimization as tfmot

    if options.mode == PTQ:
        return model
    keras_q = tfmot.quantization.keras
    model = fold_dense_batchnorm(model)
    bits = layer_weight_bits(model, options)
    with keras_q.quantize_scope():
        scheme = mixed_bits_scheme(bits) if 4 in bits.values() else quantize_scheme(context.preserved)
        qat = keras_q.quantize_apply(keras_q.quantize_annotate_model(model), scheme)
    fine_tune(qat, context, options)
    return qat


QUANTIZE = CompressStep("quantize", QuantizeOptions, quantize, check=check_options)
