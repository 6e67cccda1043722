"""Weight clustering with tfmot, exported with TFLM's look-up-table compression.

Clustering leaves each layer with k distinct float weights; per-channel int8
quantization then gives each output channel at most k distinct int8 values. TFLM's
LUT compression (`tflite_micro.tensorflow.lite.micro.compression`) stores such a
tensor as ceil(log2 k)-bit indices plus a small value table per channel and
inserts a DECODE op that expands it into the arena at run time: flash shrinks,
the arithmetic (and so the outputs) stays exactly the same.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from mcuforge.compress.common import CLUSTERS, SPARSITY, CompressStep, Context, TrainingOptions, fine_tune
from mcuforge.config import spec_field

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
MAX_INDEX_BITS = 7  # the compressor's limit: wider indices save nothing over int8


@dataclass(frozen=True)
class ClusterOptions(TrainingOptions):
    clusters: int = spec_field(16, min=2, max=128, help="distinct weights per layer (k)")
    learning_rate: float = spec_field(1e-4, min_exclusive=0.0, max=10.0)


def cluster(model, options: ClusterOptions, context: Context):
    """Cluster every clusterable layer's weights into k centroids, fine-tune, strip the wrappers."""
    import tensorflow_model_optimization as tfmot

    clustering = tfmot.clustering.keras
    kwargs = {"preserve_sparsity": True} if SPARSITY in context.preserved else {}
    clustered = clustering.cluster_weights(
        model, number_of_clusters=options.clusters, cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS, **kwargs
    )
    fine_tune(clustered, context, options)
    return clustering.strip_clustering(clustered)


def _lut_candidates(data: bytes):
    """(tensor index, index bits, channel axis or None) of the int8 weight tensors LUT compression shrinks.

    Tables follow the tensor's quantization: one per channel for per-channel
    weights, one for the tensor otherwise (TFLM decodes a per-channel table of a
    per-tensor-quantized weight wrongly: a test runs both through TFLM).
    """
    from mcuforge.deploy.tflite_model import parse_tflite

    graph = parse_tflite(data).main
    seen = set()
    for op in graph.operators:
        if op.opcode not in WEIGHT_OPS:
            continue
        tensor = graph.tensor(op.inputs[1])
        if tensor is None or not tensor.is_constant or tensor.dtype != "int8" or tensor.index in seen:
            continue
        seen.add(tensor.index)
        values = tensor.array()
        axis = tensor.quantization.quantized_dimension if tensor.quantization and tensor.quantization.per_channel else None
        slices = [values] if axis is None else [np.take(values, c, axis=axis) for c in range(values.shape[axis])]
        bits = max(1, math.ceil(math.log2(max(len(np.unique(s)) for s in slices))))
        compressed = math.ceil(values.size * bits / 8) + len(slices) * 2**bits
        if bits <= MAX_INDEX_BITS and compressed < values.size:
            yield tensor.index, bits, axis


def _compress(data: bytes, candidates: list[tuple[int, int, int | None]]) -> bytes:
    from tflite_micro.tensorflow.lite.micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import spec as lut_spec

    builder = compression.SpecBuilder()
    for index, bits, axis in candidates:
        mode = lut_spec.PerTensor() if axis is None else lut_spec.PerChannel(axis)
        builder.add_tensor(subgraph=0, tensor=index).with_lut(index_bitwidth=bits, mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expansion is measured below, tensor by tensor
        return bytes(compression.compress(data, builder.build()))


def lut_compress(data: bytes) -> bytes | None:
    """The model with the weight tensors whose LUT compression shrinks the file compressed; None when none does.

    Each tensor is tried alone first: besides the indices and value tables, the
    DECODE op's output tensor repeats the weight's quantization parameters (a
    scale and a 64-bit zero point per channel), which can cost more than a small
    tensor saves.
    """
    gainful = [c for c in _lut_candidates(data) if len(_compress(data, [c])) < len(data)]
    if not gainful:
        return None
    compressed = _compress(data, gainful)
    return compressed if len(compressed) < len(data) else None


CLUSTER = CompressStep(
    "cluster",
    ClusterOptions,
    cluster,
    must_precede={"quantize": "tfmot cannot cluster a quantization-aware model (quantize after clustering keeps the clusters)"},
    preserves=CLUSTERS,
)
