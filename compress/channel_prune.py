"""Channel (filter) pruning: remove whole filters and units, rebuild a smaller dense model.

The only pruning that saves flash, RAM and time under TFLM, whose kernels store
and multiply dense tensors. Channels that must disappear together form a group:
a Conv2D or Dense output, followed through the layers that keep channels apart
(BatchNorm, activations, depthwise convolutions, pooling) and merged across
residual Adds. Groups reaching the model's inputs or outputs, or any layer this
module does not know, keep all their channels. Each group keeps the channels
whose producing filters have the largest L1 norms (Li et al., "Pruning Filters
for Efficient ConvNets", 2017); the removal fraction is searched so the model's
MACs drop to the requested fraction; surviving weights are copied, then the
smaller model is fine-tuned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mcuforge.compress.common import CompressStep, Context, TrainingOptions, fine_tune
from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError
from mcuforge.train.profile import model_macs

MAX_REMOVAL = 0.95


@dataclass(frozen=True)
class ChannelPruneOptions(TrainingOptions):
    macs_fraction: float = spec_field(0.5, min_exclusive=0.0, max=1.0, help="target MACs as a fraction of the input model's")
    epochs: int = spec_field(10, min=1, max=10000)


@dataclass
class _Group:
    channels: int
    frozen: bool = False
    producers: list = field(default_factory=list)


@dataclass(frozen=True)
class _Flat:
    """A flattened channels-last tensor: `positions` spatial positions times the group's channels."""

    group: int
    positions: int


class ChannelGraph:
    """Channel groups of a functional tf_keras model and each layer's place in them."""

    def __init__(self, model) -> None:
        import tf_keras

        if not isinstance(model, tf_keras.Model) or not getattr(model, "_is_graph_network", False):
            raise MCUForgeError(f"channel pruning needs a functional tf_keras model. Received: {type(model).__name__}")
        self.model = model
        self.groups: list[_Group] = []
        self.parent: list[int] = []
        self.layer_io: dict[str, tuple[object, int | None]] = {}
        info: dict[int, object] = {}
        for layer in model.layers:
            inputs = [info[id(t)] for t in _flatten(layer.input)] if not isinstance(layer, tf_keras.layers.InputLayer) else []
            out = self._visit(layer, inputs)
            info[id(layer.output)] = out
            self.layer_io[layer.name] = (inputs[0] if inputs else None, out if isinstance(out, int) else None)
        for tensor in _flatten(model.outputs):
            self._freeze(info[id(tensor)])

    def _new(self, channels: int, frozen: bool = False) -> int:
        self.groups.append(_Group(int(channels), frozen))
        self.parent.append(len(self.parent))
        return len(self.groups) - 1

    def root(self, group: int) -> int:
        while self.parent[group] != group:
            self.parent[group] = self.parent[self.parent[group]]
            group = self.parent[group]
        return group

    def _union(self, a: int, b: int) -> int:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[rb] = ra
            self.groups[ra].frozen |= self.groups[rb].frozen
            self.groups[ra].producers += self.groups[rb].producers
        return ra

    def _freeze(self, item) -> None:
        if isinstance(item, (int, _Flat)):
            self.groups[self.root(item if isinstance(item, int) else item.group)].frozen = True

    def _visit(self, layer, inputs: list):
        import tf_keras

        L = tf_keras.layers
        channels = int(layer.output_shape[-1]) if not isinstance(layer.output_shape, list) else int(layer.output_shape[0][-1])
        single = inputs[0] if len(inputs) == 1 else None
        if isinstance(layer, L.InputLayer):
            return self._new(channels, frozen=True)
        if isinstance(layer, L.DepthwiseConv2D):
            if layer.depth_multiplier == 1 and isinstance(single, int):
                return single
        elif isinstance(layer, L.Conv2D):
            if layer.groups == 1 and isinstance(single, int):
                return self._produce(layer, channels)
        elif isinstance(layer, L.Dense):
            if isinstance(single, (int, _Flat)) and len(layer.input_shape) == 2:
                return self._produce(layer, channels)
        elif isinstance(layer, (L.ReLU, L.Activation, L.Dropout)):
            if single is not None:
                return single
        elif isinstance(layer, (L.BatchNormalization, L.GlobalAveragePooling2D, L.MaxPooling2D, L.AveragePooling2D)):
            axis = getattr(layer, "axis", [-1])
            if isinstance(single, int) and list(np.atleast_1d(axis)) in ([-1], [len(layer.input_shape) - 1]):
                return single
        elif isinstance(layer, L.Flatten):
            if isinstance(single, int):
                return _Flat(single, int(np.prod(layer.input_shape[1:-1])))
        elif isinstance(layer, L.Add):
            if inputs and all(isinstance(i, int) for i in inputs):
                merged = inputs[0]
                for other in inputs[1:]:
                    merged = self._union(merged, other)
                return merged
        for item in inputs:
            self._freeze(item)
        return self._new(channels, frozen=True)

    def _produce(self, layer, channels: int) -> int:
        group = self._new(channels)
        self.groups[group].producers.append(layer)
        return group

    def prunable_roots(self) -> list[int]:
        return sorted({self.root(g) for g in range(len(self.groups)) if not self.groups[self.root(g)].frozen})

    def importance(self, root: int) -> np.ndarray:
        """Per channel: the sum over the group's producers of filter L1 norms, each normalized by its mean."""
        total = np.zeros(self.groups[root].channels)
        for layer in self.groups[root].producers:
            kernel = np.abs(layer.get_weights()[0])
            norms = kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
            total += norms / max(norms.mean(), 1e-12)
        return total

    def keep_plan(self, removal: float) -> dict[int, np.ndarray]:
        """Sorted indices of the channels each prunable group keeps when `removal` of them go."""
        plan = {}
        for root in self.prunable_roots():
            channels = self.groups[root].channels
            keep = max(1, int(round(channels * (1.0 - removal))))
            plan[root] = np.sort(np.argsort(-self.importance(root), kind="stable")[:keep])
        return plan


def _flatten(tensors) -> list:
    return list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]


def _indices(graph: ChannelGraph, item, plan: dict[int, np.ndarray]) -> np.ndarray | None:
    """Kept indices along the axis `item` describes (None: keep everything)."""
    if item is None:
        return None
    group = graph.root(item.group if isinstance(item, _Flat) else item)
    if group not in plan:
        return None
    if isinstance(item, _Flat):
        channels = graph.groups[group].channels
        return (np.arange(item.positions)[:, None] * channels + plan[group][None, :]).reshape(-1)
    return plan[group]


def _rebuilt(graph: ChannelGraph, plan: dict[int, np.ndarray]):
    """A model with the planned channel counts and freshly initialized weights."""
    import tf_keras

    config = graph.model.get_config()
    for layer_config in config["layers"]:
        _, out = graph.layer_io[layer_config["config"]["name"]]
        kept = _indices(graph, out, plan) if out is not None else None
        if kept is None:
            continue
        for key in ("filters", "units"):
            if key in layer_config["config"]:
                layer_config["config"][key] = int(len(kept))
    return tf_keras.Model.from_config(config)


def _copy_weights(graph: ChannelGraph, plan: dict[int, np.ndarray], smaller) -> None:
    """Copy the surviving slices of every layer's weights into `smaller`."""
    import tf_keras

    L = tf_keras.layers
    for layer in graph.model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        into, out = graph.layer_io[layer.name]
        keep_in, keep_out = _indices(graph, into, plan), _indices(graph, out, plan)
        if isinstance(layer, L.DepthwiseConv2D):
            kernel = weights[0] if keep_in is None else weights[0][:, :, keep_in, :]
            rest = [w if keep_in is None else w[keep_in] for w in weights[1:]]
            weights = [kernel, *rest]
        elif isinstance(layer, (L.Conv2D, L.Dense)):
            kernel = weights[0]
            if keep_in is not None:
                kernel = np.take(kernel, keep_in, axis=-2)
            if keep_out is not None:
                kernel = np.take(kernel, keep_out, axis=-1)
            weights = [kernel, *[w if keep_out is None else w[keep_out] for w in weights[1:]]]
        elif isinstance(layer, L.BatchNormalization):
            weights = [w if keep_in is None else w[keep_in] for w in weights]
        smaller.get_layer(layer.name).set_weights(weights)


def shrink(model, removal: float):
    """`model` with `removal` of the channels of every prunable group physically removed (no fine-tuning)."""
    graph = ChannelGraph(model)
    plan = graph.keep_plan(removal)
    smaller = _rebuilt(graph, plan)
    _copy_weights(graph, plan, smaller)
    return smaller


def removal_for_macs(model, macs_fraction: float, iterations: int = 12) -> float:
    """The smallest uniform removal fraction whose rebuilt model has at most `macs_fraction` of the MACs."""
    graph = ChannelGraph(model)
    if not graph.prunable_roots():
        raise MCUForgeError(f"channel pruning found no prunable channels in model {model.name!r}")
    budget = macs_fraction * model_macs(model)
    if model_macs(_rebuilt(graph, graph.keep_plan(MAX_REMOVAL))) > budget:
        raise MCUForgeError(
            f"compress.options.channel_prune.macs_fraction: {macs_fraction} is out of reach for {model.name!r} "
            f"even removing {MAX_REMOVAL:.0%} of the prunable channels (the input and output layers keep theirs): raise it"
        )
    low, high = 0.0, MAX_REMOVAL
    for _ in range(iterations):
        middle = (low + high) / 2
        if model_macs(_rebuilt(graph, graph.keep_plan(middle))) <= budget:
            high = middle
        else:
            low = middle
    return high


def channel_prune(model, options: ChannelPruneOptions, context: Context):
    """Shrink `model` to the MACs budget and fine-tune it; returns the smaller model."""
    smaller = shrink(model, removal_for_macs(model, options.macs_fraction))
    fine_tune(smaller, context, options)
    return smaller


def output_channels(model) -> dict[str, int]:
    """Output channels of every Conv2D and Dense layer (depthwise ones follow their input), by layer name."""
    import tf_keras

    L = tf_keras.layers
    return {
        layer.name: int(layer.output_shape[-1])
        for layer in model.layers
        if isinstance(layer, (L.Conv2D, L.Dense)) and not isinstance(layer, L.DepthwiseConv2D)
    }


CHANNEL_PRUNE = CompressStep(
    "channel_prune",
    ChannelPruneOptions,
    channel_prune,
    must_precede={
        "prune": "channel pruning rebuilds and fine-tunes a dense model, losing the zeros",
        "cluster": "channel pruning rebuilds and fine-tunes a dense model, losing the clusters",
        "quantize": "tfmot cannot rebuild a quantization-aware model",
    },
    details=lambda before, after: {"channels_before": output_channels(before), "channels_after": output_channels(after)},
)
