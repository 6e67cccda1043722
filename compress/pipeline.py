"""The compress stage: the spec's steps applied in order, each measured on what the device gets.

After every step the model is converted to int8 (deploy's converter: calibrated,
or from the QAT ranges), run through the TFLM host interpreter on the test
split, and sized: parameters and non-zero parameters of the .tflite, MACs,
int8 bytes, LUT-compressed bytes and the measured arena. Output, written
atomically to build/<name>/compress/: the final `model.h5`, one .tflite per
step, `steps.json` and `pareto.png`. A step that loses more than
`compress.max_accuracy_drop` stops the run and leaves the last good output as it
was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mcuforge.artifacts import atomic_output_dir
from mcuforge.compress.channel_prune import ChannelPruneOptions, channel_prune
from mcuforge.compress.cluster import ClusterOptions, cluster, lut_compress
from mcuforge.compress.common import Context
from mcuforge.compress.distill import DistillOptions, check_teacher, distill, labels_only
from mcuforge.compress.prune import PruneOptions, layer_sparsity, prune
from mcuforge.compress.quantize import QuantizeOptions, quantize
from mcuforge.errors import MCUForgeError
from mcuforge.layout import KERAS_MODEL_FILE
from mcuforge.progress import Progress
from mcuforge.results import CompressResult, RecipeStep, StepRow
from mcuforge.spec import CompressSpec, Spec, parse_dataclass, to_dict
from mcuforge.train.datasets import ANOMALY

PARETO_FILE = "pareto.png"


@dataclass(frozen=True)
class Step:
    options: type
    apply: Callable


STEPS: dict[str, Step] = {
    "distill": Step(DistillOptions, distill),
    "channel_prune": Step(ChannelPruneOptions, channel_prune),
    "prune": Step(PruneOptions, prune),
    "cluster": Step(ClusterOptions, cluster),
    "quantize": Step(QuantizeOptions, quantize),
}

# Steps that must come before another, and why the other order cannot work.
_ORDER_RULES = [
    ("distill", "channel_prune", "distillation trains a fresh student, discarding the channels pruned before it"),
    ("distill", "prune", "distillation trains a fresh student, discarding the pruning before it"),
    ("distill", "cluster", "distillation trains a fresh student, discarding the clusters before it"),
    ("distill", "quantize", "distillation trains a fresh float student, discarding the quantization before it"),
    ("channel_prune", "prune", "channel pruning rebuilds and fine-tunes a dense model, losing the zeros"),
    ("channel_prune", "cluster", "channel pruning rebuilds and fine-tunes a dense model, losing the clusters"),
    ("prune", "cluster", "pruning after clustering breaks the shared weights (cluster keeps the zeros of an earlier prune)"),
    ("channel_prune", "quantize", "tfmot cannot rebuild a quantization-aware model"),
    ("prune", "quantize", "tfmot cannot prune a quantization-aware model (quantize after pruning keeps the zeros)"),
    ("cluster", "quantize", "tfmot cannot cluster a quantization-aware model (quantize after clustering keeps the clusters)"),
]


@dataclass(frozen=True)
class Recipe:
    """The validated steps, each with its options dataclass."""

    steps: tuple[tuple[str, Any], ...]
    max_accuracy_drop: float | None


def parse_recipe(spec: CompressSpec, model_arch: str) -> Recipe:
    """Check step names, order and per-step options for a `model_arch` model; errors name the field, value and fix."""
    names = list(spec.steps)
    for i, name in enumerate(names):
        if name not in STEPS:
            raise MCUForgeError(f"compress.steps[{i}]: expected one of {', '.join(STEPS)}. Received: {name!r}")
        if name in names[:i]:
            raise MCUForgeError(f"compress.steps[{i}]: step {name!r} appears twice; give each step once")
    for first, then, why in _ORDER_RULES:
        if first in names and then in names and names.index(then) < names.index(first):
            raise MCUForgeError(
                f"compress.steps: {first} after {then} cannot work: {why}. Put {first} before {then}. Received: {names}"
            )
    for key in spec.options:
        if key not in names:
            raise MCUForgeError(
                f"compress.options.{key}: no step {key!r} in compress.steps {names}: add the step or remove its options"
            )
    steps = tuple(
        (name, parse_dataclass(STEPS[name].options, spec.options.get(name) or {}, f"compress.options.{name}")) for name in names
    )
    if "distill" in names:
        dict(steps)["distill"].check_student(model_arch)
    return Recipe(steps, spec.max_accuracy_drop)


def _metric_name(task: str) -> str:
    return "auc" if task == ANOMALY else "accuracy"


def _nonzero_constants(data: bytes) -> int:
    """Non-zero values among the constant inputs of every op (the figure beside the report's parameters)."""
    from mcuforge.deploy.tflite_model import parse_tflite

    graph = parse_tflite(data).main
    constants = {i for op in graph.operators for i in op.inputs if i >= 0 and graph.tensors[i].is_constant}
    return int(sum(np.count_nonzero(graph.tensors[i].array()) for i in constants))


def _emulate(data: bytes, x: np.ndarray) -> np.ndarray:
    """Raw outputs of TFLM on every sample of `x` (float samples quantized at the input)."""
    from mcuforge.deploy.tflite_model import parse_tflite
    from mcuforge.deploy.tflm import Emulator, prepare_input

    emulator = Emulator(parse_tflite(data), data)
    return emulator.run(prepare_input(x, emulator.inputs[0], "test split"))[0]


def _score(data: bytes, raw: np.ndarray, context: Context) -> float:
    from mcuforge.deploy.tflite_model import parse_tflite
    from mcuforge.deploy.tflm import dequantize
    from mcuforge.train.trainer import score_predictions

    data_set = context.dataset
    output = parse_tflite(data).main.output_tensors[0]
    shape = data_set.x_test.shape if data_set.task == ANOMALY else (len(raw), -1)
    predictions = dequantize(raw, output).reshape(shape)
    scores = score_predictions(data_set.task, predictions, data_set.x_test, data_set.y_test, data_set.class_names)
    return float(scores[_metric_name(data_set.task)])


def measure(model, context: Context, out_dir: Path, step: str, file_stem: str) -> StepRow:
    """Convert `model` to int8, run it in TFLM on the test split, and size it; writes <file_stem>.tflite."""
    from mcuforge.deploy.convert import convert_model, is_quantization_aware, representative_sample
    from mcuforge.deploy.report import build_report

    spec, data_set = context.spec, context.dataset
    qat = is_quantization_aware(model)
    calibration = None if qat else representative_sample(data_set.x_train, spec.deploy.representative_samples, spec.data.seed)
    data = convert_model(model, calibration)
    path = out_dir / f"{file_stem}.tflite"
    path.write_bytes(data)
    report = build_report(path)
    raw = _emulate(data, data_set.x_test)
    row = StepRow(
        step=step,
        metric=_score(data, raw, context),
        quantization_aware=qat,
        parameters=report.parameters,
        nonzero_parameters=_nonzero_constants(data),
        macs=report.macs,
        int8_bytes=len(data),
        compressed_bytes=len(data),
        arena_bytes=report.arena_measured_bytes,
        tflite=path.name,
    )
    compressed = lut_compress(data)
    if compressed is not None:
        lut_path = out_dir / f"{file_stem}_lut.tflite"
        lut_path.write_bytes(compressed)
        row = replace(
            row,
            compressed_bytes=len(compressed),
            compressed_tflite=lut_path.name,
            compressed_outputs_differing=int(np.sum(np.any(_emulate(compressed, data_set.x_test) != raw, axis=tuple(range(1, raw.ndim))))),
        )
    return row


def float_row(model, context: Context) -> StepRow:
    """The float Keras model: its test metric and float .tflite size, for the Pareto plot."""
    from mcuforge.train.profile import model_macs
    from mcuforge.train.trainer import evaluate_keras, float_tflite_bytes

    weights = [w for layer in model.layers for w in layer.get_weights()]
    return StepRow(
        step="float",
        metric=float(evaluate_keras(model, context.dataset)["test"][_metric_name(context.dataset.task)]),
        parameters=int(model.count_params()),
        nonzero_parameters=int(sum(np.count_nonzero(w) for w in weights)),
        macs=model_macs(model),
        float_bytes=len(float_tflite_bytes(model)),
    )


def _channels(model) -> dict[str, int]:
    import tf_keras

    L = tf_keras.layers
    return {
        layer.name: int(layer.output_shape[-1])
        for layer in model.layers
        if isinstance(layer, (L.Conv2D, L.Dense)) and not isinstance(layer, L.DepthwiseConv2D)
    }


def _details(name: str, before, after) -> dict[str, Any]:
    """What a step changed beyond the common figures."""
    if name == "prune":
        return {"layer_sparsity": layer_sparsity(after)}
    if name == "channel_prune":
        return {"channels_before": _channels(before), "channels_after": _channels(after)}
    return {}


def _check_drop(recipe: Recipe, previous: StepRow, row: StepRow, metric: str, out_dir: Path) -> None:
    limit = recipe.max_accuracy_drop
    if limit is None:
        return
    drop = previous.metric - row.metric
    if drop > limit:
        raise MCUForgeError(
            f"compress step {row.step} lost {drop:.4f} {metric} ({previous.metric:.4f} -> {row.metric:.4f}), "
            f"more than compress.max_accuracy_drop={limit}; stopped, the last good output in {out_dir} is kept. "
            f"Give the step more epochs, make it gentler, or raise max_accuracy_drop"
        )


def plot_pareto(rows: list[StepRow], metric: str, path: Path) -> None:
    """Accuracy against flash bytes: float model, trained int8, every step, the final model highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    chained = [r for r in rows if not r.side]
    for row in rows:
        final = row is chained[-1]
        marker = "*" if final else ("s" if row.side else "o")
        ax.scatter(row.flash_bytes, row.metric, s=160 if final else 50, marker=marker, zorder=3)
        ax.annotate(row.step + (" (final)" if final else ""), (row.flash_bytes, row.metric), textcoords="offset points", xytext=(5, 5), fontsize=8)
    path_points = [(r.flash_bytes, r.metric) for r in chained]
    ax.plot(*zip(*path_points), color="grey", alpha=0.4, zorder=1)
    ax.set_xscale("log")
    ax.set_xlabel("flash bytes (.tflite, LUT-compressed where smaller)")
    ax.set_ylabel(f"test {metric} (int8 through TFLM; float for 'float')")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _given_teacher(options: DistillOptions | None, context: Context):
    """The teacher a distill step names, checked against the data set's classes (None: the trained model)."""
    from mcuforge.train.trainer import load_model

    if options is None or options.teacher is None:
        return None
    teacher = load_model(options.teacher)
    check_teacher(teacher, context.dataset, options.teacher)
    return teacher


def compress(spec: Spec, root: Path | str = "build", progress: Progress | None = None) -> CompressResult:
    """`mcuforge compress SPEC`: compress build/<name>/train/'s model (training it first when absent) into build/<name>/compress/."""
    from mcuforge.train.trainer import train

    recipe = parse_recipe(spec.compress, spec.model.arch)
    if not recipe.steps:
        raise MCUForgeError("compress.steps is empty: list the steps to run, e.g. [distill, prune, quantize]")
    progress = progress or Progress.quiet()
    layout = spec.layout(root)
    trained = layout.train / KERAS_MODEL_FILE
    if not trained.exists():
        progress.line(f"no trained model in {layout.train}: training it first")
        train(spec, layout.train, progress)
    return compress_model(spec, trained, layout.compress, progress)


def compress_model(spec: Spec, trained: Path, out_dir: Path, progress: Progress | None = None) -> CompressResult:
    """Run the spec's compression recipe on the Keras model at `trained`; write `out_dir` atomically."""
    from mcuforge.train.trainer import load_dataset, load_model, save_model

    recipe = parse_recipe(spec.compress, spec.model.arch)
    if not recipe.steps:
        raise MCUForgeError("compress.steps is empty: list the steps to run, e.g. [distill, prune, quantize]")
    progress = progress or Progress.quiet()
    context = Context(spec, load_dataset(spec))
    options = dict(recipe.steps)
    given_teacher = _given_teacher(options.get("distill"), context)
    model = load_model(trained)
    teacher = model if given_teacher is None else given_teacher
    if "distill" in options and given_teacher is None:
        check_teacher(teacher, context.dataset, str(trained))
    metric = _metric_name(context.dataset.task)
    rows: list[StepRow] = []
    with atomic_output_dir(out_dir) as staging, progress.task("compress step", len(recipe.steps) + 1) as advance:
        rows.append(float_row(model, context))
        rows.append(measure(model, context, staging, "trained", "0_trained"))
        advance(f"trained model: int8 {metric} {rows[-1].metric:.4f}")
        for index, (name, step_options) in enumerate(recipe.steps, start=1):
            before = model
            model = STEPS[name].apply(teacher if name == "distill" else model, step_options, context)
            context = Context(spec, context.dataset, context.done + (name,))
            row = replace(measure(model, context, staging, name, f"{index}_{name}"), **_details(name, before, model))
            _check_drop(recipe, [r for r in rows if not r.side][-1], row, metric, out_dir)
            rows.append(row)
            if name == "distill" and step_options.compare_with_labels_only:
                student = labels_only(step_options, context)
                rows.append(replace(measure(student, context, staging, "distill (labels only)", f"{index}_distill_labels_only"), side=True))
            advance(f"{name}: int8 {metric} {row.metric:.4f}")
        result = CompressResult(
            spec=spec.name,
            metric=metric,
            recipe=[RecipeStep(n, to_dict(o)) for n, o in recipe.steps],
            rows=rows,
        )
        save_model(model, staging / result.model)
        result.save(staging)
        plot_pareto(rows, metric, staging / PARETO_FILE)
    return result
