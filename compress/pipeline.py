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

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mcuforge.artifacts import atomic_output_dir
from mcuforge.compress.channel_prune import CHANNEL_PRUNE
from mcuforge.compress.cluster import CLUSTER, lut_compress
from mcuforge.compress.common import CompressStep, Context
from mcuforge.compress.distill import DISTILL, check_teacher
from mcuforge.compress.prune import PRUNE
from mcuforge.compress.quantize import QUANTIZE
from mcuforge.config import parse_dataclass, to_dict
from mcuforge.errors import MCUForgeError
from mcuforge.layout import KERAS_MODEL_FILE
from mcuforge.progress import Progress
from mcuforge.results import CompressResult, RecipeStep, StepRow
from mcuforge.spec import CompressSpec, Spec
from mcuforge.train.datasets import ANOMALY

PARETO_FILE = "pareto.png"


STEPS: dict[str, CompressStep] = {step.name: step for step in (DISTILL, CHANNEL_PRUNE, PRUNE, CLUSTER, QUANTIZE)}


@dataclass(frozen=True)
class Recipe:
    """The validated steps, each with its options dataclass."""

    steps: tuple[tuple[CompressStep, Any], ...]
    max_accuracy_drop: float | None


def parse_recipe(spec: CompressSpec, model_arch: str) -> Recipe:
    """Check step names, order and per-step options for a `model_arch` model; errors name the field, value and fix."""
    names = list(spec.steps)
    for i, name in enumerate(names):
        if name not in STEPS:
            raise MCUForgeError(f"compress.steps[{i}]: expected one of {', '.join(STEPS)}. Received: {name!r}")
        if name in names[:i]:
            raise MCUForgeError(f"compress.steps[{i}]: step {name!r} appears twice; give each step once")
    for first in STEPS.values():
        for then, why in first.must_precede.items():
            if first.name in names and then in names and names.index(then) < names.index(first.name):
                raise MCUForgeError(
                    f"compress.steps: {first.name} after {then} cannot work: {why}. Put {first.name} before {then}. Received: {names}"
                )
    for key in spec.options:
        if key not in names:
            raise MCUForgeError(
                f"compress.options.{key}: no step {key!r} in compress.steps {names}: add the step or remove its options"
            )
    steps = tuple(
        (STEPS[name], parse_dataclass(STEPS[name].options, spec.options.get(name) or {}, f"compress.options.{name}")) for name in names
    )
    for step, options in steps:
        if step.check is not None:
            step.check(options, model_arch)
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


def _engine_image_bytes(data: bytes, spec) -> int | None:
    """Bytes of the engine's prepared image for the spec's target (sparse filters encoded, so pruning
    shows in flash); None when the engine cannot prepare the model."""
    from mcuforge.deploy.targets import load_chip, load_target
    from mcuforge.firmware.engine import EngineError
    from mcuforge.firmware.prepared import prepared_image

    target = load_target(spec.deploy.target)
    kernels = "dsp" if load_chip(target.chip, f"target {target.name}").dsp else "portable"
    try:
        return len(prepared_image(data, kernels).data)
    except EngineError:
        return None


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
        image_bytes=_engine_image_bytes(data, spec),
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


def _given_teacher(recipe: Recipe, context: Context):
    """The teacher a teacher-taking step's options name, checked against the data set's classes (None: the trained model)."""
    from mcuforge.train.trainer import load_model

    options = next((options for step, options in recipe.steps if step.takes_teacher), None)
    if options is None or options.teacher is None:
        return None
    teacher = load_model(options.teacher)
    check_teacher(teacher, context.dataset, options.teacher)
    return teacher


@dataclass(frozen=True)
class _Prepared:
    """What compress checks before anything trains: the recipe, the data set, and a teacher the recipe names."""

    spec: Spec
    recipe: Recipe
    context: Context
    given_teacher: Any


def _prepare(spec: Spec, progress: Progress | None) -> tuple[_Prepared, Progress]:
    from mcuforge.train.trainer import check_spec, load_dataset

    check_spec(spec)
    recipe = parse_recipe(spec.compress, spec.model.arch)
    if not recipe.steps:
        raise MCUForgeError("compress.steps is empty: list the steps to run, e.g. [distill, prune, quantize]")
    progress = progress or Progress.quiet()
    context = Context(spec, load_dataset(spec), progress=progress)
    return _Prepared(spec, recipe, context, _given_teacher(recipe, context)), progress


def compress(spec: Spec, root: Path | str = "build", progress: Progress | None = None) -> CompressResult:
    """`mcuforge compress SPEC`: compress build/<name>/train/'s model (training it first when absent) into build/<name>/compress/."""
    from mcuforge.train.trainer import train

    prepared, progress = _prepare(spec, progress)
    layout = spec.layout(root)
    trained = layout.train / KERAS_MODEL_FILE
    if not trained.exists():
        progress.line(f"no trained model in {layout.train}: training it first")
        train(spec, layout.train, progress)
    return _run(prepared, trained, layout.compress, progress)


def compress_model(spec: Spec, trained: Path, out_dir: Path, progress: Progress | None = None) -> CompressResult:
    """Run the spec's compression recipe on the Keras model at `trained`; write `out_dir` atomically."""
    prepared, progress = _prepare(spec, progress)
    return _run(prepared, trained, out_dir, progress)


def _run(prepared: _Prepared, trained: Path, out_dir: Path, progress: Progress) -> CompressResult:
    from mcuforge.train.trainer import load_model, save_model

    spec, recipe, context = prepared.spec, prepared.recipe, prepared.context
    model = load_model(trained)
    teacher = model if prepared.given_teacher is None else prepared.given_teacher
    if any(step.takes_teacher for step, _ in recipe.steps) and prepared.given_teacher is None:
        check_teacher(teacher, context.dataset, str(trained))
    metric = _metric_name(context.dataset.task)
    rows: list[StepRow] = []
    with atomic_output_dir(out_dir) as staging, progress.task("compress step", len(recipe.steps) + 1) as advance:
        rows.append(float_row(model, context))
        rows.append(measure(model, context, staging, "trained", "0_trained"))
        advance(f"trained model: int8 {metric} {rows[-1].metric:.4f}")
        for index, (step, step_options) in enumerate(recipe.steps, start=1):
            before = model
            model = step.apply(teacher if step.takes_teacher else model, step_options, context)
            context = replace(context, done=context.done + (step,))
            row = measure(model, context, staging, step.name, f"{index}_{step.name}")
            row = replace(row, **step.details(before, model)) if step.details else row
            _check_drop(recipe, [r for r in rows if not r.side][-1], row, metric, out_dir)
            rows.append(row)
            baseline = step.baseline(step_options, context) if step.baseline else None
            if baseline is not None:
                label, stem = f"{step.name} ({step.baseline_label})", f"{index}_{step.name}_{step.baseline_label.replace(' ', '_')}"
                rows.append(replace(measure(baseline, context, staging, label, stem), side=True))
            advance(f"{step.name}: int8 {metric} {row.metric:.4f}")
        result = CompressResult(
            spec=spec.name,
            metric=metric,
            recipe=[RecipeStep(step.name, to_dict(options)) for step, options in recipe.steps],
            rows=rows,
        )
        save_model(model, staging / result.model)
        result.save(staging)
        plot_pareto(rows, metric, staging / PARETO_FILE)
    return result
