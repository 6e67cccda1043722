"""build/<name>/report.html: one static page a person reads, opening without a server.

Every figure comes from the typed result a stage saved (mcuforge.results) or a
record it names (the model report, the evaluation, the accelerator checks);
images are embedded as data URIs so the page is a single self-contained file.
A stage that has not run is shown as such, never invented.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import yaml

from mcuforge.artifacts import write_text_atomic
from mcuforge.config import to_dict
from mcuforge.layout import BuildLayout
from mcuforge.results import (
    AcceleratorsResult,
    Artifact,
    CompressResult,
    DeployResult,
    FirmwareResult,
    PersonalizationResult,
    SearchResult,
    TrainResult,
)
from mcuforge.spec import Spec

SECTIONS = (
    ("spec", "Spec"),
    ("data", "Data"),
    ("search", "Architecture search"),
    ("training", "Training"),
    ("federated", "Federated training"),
    ("personalization", "Personalization"),
    ("compression", "Compression"),
    ("layers", "Per-layer profile"),
    ("fit", "Target fit"),
    ("agreement", "Emulator agreement"),
    ("firmware", "Firmware"),
    ("accelerators", "Edge TPU and Ethos-U"),
)

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:.8em;overflow:auto}
.missing{color:#a33}.ok{color:#272}img{max-width:100%}nav a{margin-right:1em}
"""


def _read_json(path: Path) -> Any | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _result(kind: type[Artifact], directory: Path) -> Any | None:
    """The stage's typed result, or None when the stage has not run."""
    return kind.load(directory) if (directory / kind.FILE).is_file() else None


def _deploy_record(layout: BuildLayout, record: str) -> Path | None:
    """A file the deploy stage's result names (its `record` field), or None when the stage has not run."""
    deployed = _result(DeployResult, layout.deploy)
    if deployed is None or not (layout.deploy / getattr(deployed, record)).is_file():
        return None
    return layout.deploy / getattr(deployed, record)


def _firmware_runs(layout: BuildLayout) -> list[FirmwareResult]:
    return [FirmwareResult.load(path.parent) for path in sorted(layout.firmware_root.glob(f"*/{FirmwareResult.FILE}"))]


def _image(path_or_png: Path | bytes, alt: str) -> str:
    data = path_or_png.read_bytes() if isinstance(path_or_png, Path) else path_or_png
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _missing(what: str, command: str) -> str:
    return f'<p class="missing">Not run yet: {html.escape(what)} (<code>{html.escape(command)}</code>).</p>'


def _fit_chart(bars: list[tuple[str, dict[str, int], int]]) -> bytes:
    """Horizontal stacked bars of what fills flash and RAM, against each limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(bars), 1, figsize=(8, 1.3 * len(bars) + 0.4), squeeze=False)
    for ax, (title, parts, limit) in zip(axes[:, 0], bars):
        left = 0
        for label, size in parts.items():
            ax.barh([0], [size], left=left, label=f"{label} {size:,} B")
            left += size
        ax.axvline(limit, color="red", linestyle="--", label=f"limit {limit:,} B")
        ax.set_xlim(0, max(limit, left) * 1.05)
        ax.set_yticks([])
        ax.set_title(f"{title}: {left:,} of {limit:,} B ({100 * left / limit:.1f} %)", fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _spec_section(spec: Spec, layout: BuildLayout) -> str:
    return f"<pre>{html.escape(yaml.safe_dump(to_dict(spec), sort_keys=False))}</pre>"


def _data_section(spec: Spec, layout: BuildLayout) -> str:
    from mcuforge.train.trainer import load_dataset

    summary = load_dataset(spec).summary()
    rows = [[split, info["count"], "x".join(map(str, info["shape"][1:])), ", ".join(f"{k}: {v}" for k, v in info["per_class"].items())]
            for split, info in summary["splits"].items()]
    return f"<p>{html.escape(summary['name'])}: {html.escape(summary['task'])}, input {summary['input_shape']}</p>" + _table(
        ["split", "samples", "input", "per class"], rows
    )


def _search_section(spec: Spec, layout: BuildLayout) -> str:
    if spec.search is None:
        return "<p>The spec has no search section: the model section is trained as written.</p>"
    searched = _result(SearchResult, layout.search_result)
    if searched is None:
        return _missing("architecture search", f"mcuforge search {spec.name}")
    counts = (
        f"<p>Study {html.escape(searched.study)}: {searched.trials} trials ({searched.complete} complete, {searched.pruned} pruned, "
        f"{searched.rejected} over budget, {searched.failed} failed); chosen: trial {searched.chosen_trial}"
        + (f", the best of {searched.finalists} finalists trained again for {searched.finalist_epochs} epochs "
           f"(int8 val accuracy {searched.final_accuracy:.4f})" if searched.finalists else "") + ". "
        "Accuracy is the int8 model's through TFLM on the validation split; flash and arena are measured and instructions predicted by the cost model fitted on QEMU counts, before training.</p>"
    )
    front = [row for row in json.loads((layout.search_result / searched.front_json).read_text()) if row["on_front"]]
    rows = [[row["number"], row["architecture"], row["accuracy"], row["instructions"], row["arena_bytes"], row["flash_bytes"]]
            for row in sorted(front, key=lambda row: row["instructions"])]
    table = _table(["trial", "architecture", "int8 val accuracy", "instructions", "arena bytes", "flash bytes"], rows)
    return counts + table + _image(layout.search_result / searched.plot, "accuracy against instructions, arena and flash")


def _training_section(spec: Spec, layout: BuildLayout) -> str:
    if spec.federated is not None:
        return '<p>Trained across devices instead: see <a href="#federated">Federated training</a>.</p>'
    trained = _result(TrainResult, layout.train)
    if trained is None:
        return _missing("training", f"mcuforge train {spec.name}")
    metrics, key = trained.metrics, trained.metric_name
    rows = [[split, metrics[split].get(key, float("nan"))] for split in metrics if isinstance(metrics[split], dict) and key in metrics[split]]
    facts = _table(
        ["arch", "parameters", "MACs", "float .tflite bytes", "training seconds"],
        [[metrics["arch"], metrics["parameters"], metrics["macs"], metrics["float_model_bytes"], metrics["training_seconds"]]],
    )
    return facts + _table(["split", f"float {key}"], rows) + _image(layout.train / "training.png", "training curves")


def _compression_section(spec: Spec, layout: BuildLayout) -> str:
    compressed = _result(CompressResult, layout.compress)
    if compressed is None:
        return _missing("compression", "mcuforge compress SPEC") if spec.compress.steps else "<p>The spec has no compression steps.</p>"
    header = ["step", compressed.metric, "parameters", "non-zero", "MACs", "int8 bytes", "compressed bytes", "engine image bytes",
              "arena bytes"]
    rows = [[r.step, r.metric, r.parameters, r.nonzero_parameters, r.macs, r.model_bytes, r.compressed_bytes, r.image_bytes,
             r.arena_bytes]
            for r in compressed.rows]
    pareto = layout.compress / "pareto.png"
    return _table(header, rows) + (_image(pareto, "accuracy against flash") if pareto.is_file() else "")


def _model_report(layout: BuildLayout):
    from mcuforge.deploy.report import read_report

    path = _deploy_record(layout, "report")
    return None if path is None else read_report(path)


def _layers_section(spec: Spec, layout: BuildLayout) -> str:
    report = _model_report(layout)
    if report is None:
        return _missing("the model report", "mcuforge report MODEL.tflite")
    rows = [[r.index, r.op, " ".join("x".join(map(str, s)) for s in r.output_shapes), r.parameters, r.macs,
             r.weight_bytes, r.activation_bytes] for r in report.layers]
    totals = _table(["flash (model bytes)", "peak arena (TFLM)", "MACs", "parameters"],
                    [[report.flash_bytes, "n/a (LCE ops)" if report.arena_measured_bytes is None else report.arena_measured_bytes,
                      report.macs, report.parameters]])
    return totals + _table(["#", "op", "output", "params", "MACs", "weight B", "activation B"], rows)


def _fit_section(spec: Spec, layout: BuildLayout) -> str:
    from mcuforge.deploy.targets import load_target

    report = _model_report(layout)
    if report is None:
        return _missing("the model report", "mcuforge convert SPEC")
    target = load_target(spec.deploy.target)
    bars = [(f"{target.name} flash", {"model": report.flash_bytes}, target.flash_bytes)]
    if report.arena_bytes is not None:  # None for LCE models: the firmware rows below give our engine's arena
        bars.append((f"{target.name} RAM", {"tensor arena": report.arena_bytes}, target.ram_bytes))
    for run in _firmware_runs(layout):
        size = run.size
        bars.append((f"{run.board} firmware flash", {"model": size.model, "code and constants": size.flash_used - size.model}, size.flash_limit))
        bars.append((f"{run.board} firmware RAM", {"arena": size.arena, "other data, bss, stack": size.ram_used - size.arena}, size.ram_limit))
    return f"<p>{html.escape(target.description)}</p>" + _image(_fit_chart(bars), "flash and RAM against the limits")


def _agreement_section(spec: Spec, layout: BuildLayout) -> str:
    from mcuforge.deploy.evaluate import read_evaluation

    path = _deploy_record(layout, "evaluation")
    if path is None:
        return _missing("evaluation", f"mcuforge evaluate {spec.name}")
    ev = read_evaluation(path)
    a = ev.litert
    return _table(
        ["samples", f"float Keras {ev.metric}", f"TFLM int8 {ev.metric}", "LiteRT outputs differing", "max difference", "predictions differing"],
        [[ev.samples, ev.float_keras, ev.tflm, f"{a.differing_elements} of {a.elements}", a.max_abs_difference, a.differing_predictions]],
    ) + "<p>TFLM (reference kernels) is the reference; LiteRT's optimized kernels may round differently.</p>" + "".join(
        _extra_evaluation(name, extra, ev.metric) for name, extra in sorted(ev.extra.items())
    )


def _extra_evaluation(name: str, extra, metric: str) -> str:
    """An extra evaluation set (e.g. real recordings): its totals, per-class accuracy and TFLM confusion matrix."""
    parts = [
        f"<h3>Extra evaluation set: {html.escape(name)}</h3>",
        _table(["samples", f"float Keras {metric}", f"TFLM int8 {metric}"], [[extra.samples, extra.float_keras, extra.tflm]]),
    ]
    if extra.confusion_matrix:
        parts.append(_table(["class", "clips", "TFLM int8 correct", "accuracy"],
                            [[c, n, ok, f"{ok / n:.3f}"] for c, n, ok in extra.per_class()]))
        parts.append("<p>Confusion matrix, TFLM int8 (rows: true class, columns: predicted):</p>")
        parts.append(_table(["true \\ predicted", *extra.class_names],
                            [[c, *row] for c, row in zip(extra.class_names, extra.confusion_matrix)]))
    return "".join(parts)


def _firmware_section(spec: Spec, layout: BuildLayout) -> str:
    runs = _firmware_runs(layout)
    if not runs:
        return _missing("firmware", "make firmware / mcuforge run")
    rows = [[run.board, run.size.text, run.size.data, run.size.bss, run.arena_used, f"{run.identical_to_tflm} of {run.vectors}",
             int(sum(run.cycles) / len(run.cycles)) if run.cycles else "n/a"] for run in runs]
    return _table(["board", "text B", "data B", "bss B", "arena used B", "outputs identical to TFLM", "emulated SysTick cycles per inference"], rows) + (
        "<p>Under QEMU the board's SysTick counts virtual time: with <code>-icount shift=0</code> each guest instruction "
        "takes 1 ns, so the figure is instructions &times; board clock / 1 GHz, deterministic but not the cycles of real "
        "silicon. Exact instruction counts per inference: <code>make bench-firmware</code>.</p>"
    )


def _accelerators_section(spec: Spec, layout: BuildLayout) -> str:
    accelerators = _result(AcceleratorsResult, layout.accelerators)
    if accelerators is None:
        return _missing("accelerator checks", "mcuforge edgetpu check / mcuforge npu compile")
    check = _read_json(layout.accelerators / accelerators.edgetpu_check)
    npu = _read_json(layout.accelerators / accelerators.npu)
    rows = [[op["index"], op["op"], op["status"], "; ".join(p["rule"] + ": " + p["fix"] for p in op["problems"])] for op in check["ops"]]
    return (
        f"<h3>Coral Edge TPU (static check)</h3><p>{check['mapped']} ops map to the Edge TPU, {check['on_cpu']} run on the CPU.</p>"
        + _table(["#", "op", "status", "why and fix"], rows)
        + "<h3>Arm Ethos-U (Vela estimate)</h3>"
        + _table(
            ["accelerator", "NPU cycles", "inference ms", "SRAM B", "off-chip flash B", "ops on CPU"],
            [[npu["accelerator"], npu["npu_cycles"], npu["inference_time_s"] * 1e3, npu["sram_bytes"], npu["off_chip_flash_bytes"], npu["cpu_ops"]]],
        )
    )


def _federated_section(spec: Spec, layout: BuildLayout) -> str:
    if spec.federated is None:
        return "<p>Trained centrally (the spec has no <code>federated:</code> section).</p>"
    directory = layout.stage("federate")
    trained = _result(TrainResult, directory)
    if trained is None:
        return _missing("federated training", f"mcuforge federate {spec.name}")
    metrics, fed, settings, metric = trained.metrics, trained.metrics["federated"], spec.federated, trained.metric_name
    facts = _table(
        ["clients", "per round", "strategy", "updates", "dropout", "uploaded bytes", "wall seconds", f"float test {metric}", f"int8 test {metric} (TFLM)"],
        [[fed["clients"], f"{settings.fraction:.0%}", settings.strategy, settings.compression, f"{settings.dropout:.0%}",
          fed["uploaded_bytes"], fed["wall_seconds"], metrics["test"][metric], fed[f"int8_test_{metric}"]]],
    )
    rounds = _table(
        ["round", "sampled", "answered", "failed", "aggregated", "uploaded bytes", f"test {metric}"],
        [[r["round"], r["sampled"], r["answered"], r["failed"], "yes" if r["aggregated"] else "no (too few answers)",
          sum(r["uploaded_bytes"] or []), r["test_accuracy"]] for r in fed["rounds"]],
    )
    return facts + _image(directory / "federated.png", "accuracy and uploaded bytes per round") + rounds


def _personalization_section(spec: Spec, layout: BuildLayout) -> str:
    if spec.federated is None or spec.federated.personalization is None:
        return "<p>Not asked for (no <code>federated.personalization:</code> section).</p>"
    directory = layout.stage("federate")
    personal = _result(PersonalizationResult, directory)
    if personal is None:
        return _missing("personalization", f"mcuforge federate {spec.name}")
    intro = (
        f"<p>Each client fine-tuned the classifier head of the federated model for {personal.steps} steps on its own "
        f"data; both models scored on the {personal.held_out_fraction:.0%} of its samples it never trained on. "
        f"Mean gain {100 * personal.mean_gain:+.1f} points over {len(personal.clients)} clients.</p>"
    )
    rows = [
        [c.client, c.train_samples, c.held_out_samples, c.global_accuracy, c.personalized_accuracy, f"{100 * c.gain:+.1f}"]
        for c in personal.clients
    ]
    table = _table(["client", "trained on", "held out", "global accuracy", "personalized accuracy", "gain (points)"], rows)
    return intro + _image(directory / personal.plot, "held-out accuracy gain per client") + table


_RENDERERS = {
    "spec": _spec_section,
    "data": _data_section,
    "search": _search_section,
    "training": _training_section,
    "federated": _federated_section,
    "personalization": _personalization_section,
    "compression": _compression_section,
    "layers": _layers_section,
    "fit": _fit_section,
    "agreement": _agreement_section,
    "firmware": _firmware_section,
    "accelerators": _accelerators_section,
}


def write_html_report(spec: Spec, root: Path | str = "build") -> Path:
    """Render every section from the stages' results under build/<name>/ into report.html."""
    layout = spec.layout(root)
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS)
    body = "".join(f'<section id="{key}"><h2>{title}</h2>{_RENDERERS[key](spec, layout)}</section>' for key, title in SECTIONS)
    page = (
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mcuforge report: {html.escape(spec.name)}</title>"
        f"<style>{STYLE}</style></head><body><h1>mcuforge report: {html.escape(spec.name)}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )
    return write_text_atomic(layout.report, page)
