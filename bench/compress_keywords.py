"""Compression benchmark on the keywords DS-CNN: what each technique gives on the device's int8 model.

Runs on demand (it trains: minutes to an hour on two cores):

    .venv/bin/python bench/compress_keywords.py [--spec specs/keywords.yaml] [--root build]
        [--channel-epochs 20] [--cluster-epochs 5]

Rows: the float model; int8 post-training quantization; channel pruning to half
the MACs, fine-tuned, then int8; 16 clusters per layer, fine-tuned, int8 with
TFLM's LUT compression. Accuracy is the int8 model through the TFLM host
interpreter on the test split (float: Keras). The issue's targets are checked
and every miss is printed with its gap; the table prints whatever comes out.
Writes <root>/<name>/bench/compress_keywords.json and the .tflite files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from mcuforge.artifacts import write_json_atomic
from mcuforge.compress.channel_prune import ChannelPruneOptions, channel_prune
from mcuforge.compress.cli import render_table
from mcuforge.compress.cluster import ClusterOptions, cluster
from mcuforge.compress.common import Context
from mcuforge.compress.pipeline import float_row, measure
from mcuforge.config import to_dict
from mcuforge.layout import KERAS_MODEL_FILE
from mcuforge.results import StepRow
from mcuforge.spec import load_spec


def _copy(model):
    import tf_keras

    clone = tf_keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def targets(rows: dict[str, StepRow]) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for the issue's three goals; accuracy points are percentage points."""
    f, q, ch, cl = rows["float"], rows["int8"], rows["channel_prune"], rows["cluster"]
    points = lambda a, b: 100 * (a.metric - b.metric)  # noqa: E731
    ratio = f.float_bytes / q.int8_bytes
    lut_ratio = q.int8_bytes / cl.compressed_bytes
    macs = ch.macs / q.macs
    return [
        ("int8 >= 4x smaller than float", ratio >= 4, f"{ratio:.2f}x"),
        ("int8 loses <= 1 point", points(f, q) <= 1, f"{points(f, q):+.2f} points lost"),
        ("channel pruning <= 0.5x MACs", macs <= 0.5, f"{macs:.3f}x MACs"),
        ("channel pruning + int8 loses <= 2 points", points(f, ch) <= 2, f"{points(f, ch):+.2f} points lost vs float"),
        ("16 clusters + LUT >= 1.5x smaller than int8", lut_ratio >= 1.5, f"{lut_ratio:.2f}x"),
        ("clustering loses <= 1 further point", points(q, cl) <= 1, f"{points(q, cl):+.2f} points lost vs int8"),
    ]


def trained(spec, root: Path, console):
    """(context, the spec's trained float model, <root>/<name>/bench/): trains first when the model is missing."""
    from mcuforge.train.trainer import load_dataset, load_model, train

    train_dir = spec.layout(root).train
    if not (train_dir / KERAS_MODEL_FILE).exists():
        console.log(f"training {spec.name} first ({spec.train.epochs} epochs)")
        train(spec, train_dir)
    out_dir = spec.build_dir(root) / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    return Context(spec, load_dataset(spec)), load_model(train_dir / KERAS_MODEL_FILE), out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=Path("specs/keywords.yaml"))
    parser.add_argument("--root", type=Path, default=Path("build"))
    parser.add_argument("--channel-epochs", type=int, default=20, help="fine-tuning epochs after channel pruning")
    parser.add_argument("--cluster-epochs", type=int, default=5, help="fine-tuning epochs while clustering")
    parser.add_argument("--clusters", type=int, default=16)
    args = parser.parse_args()

    from rich.console import Console

    console = Console(width=120)
    context, model, out_dir = trained(load_spec(args.spec), args.root, console)

    rows = {"float": float_row(model, context), "int8": measure(model, context, out_dir, "int8", "0_int8")}
    console.log("channel pruning to half the MACs")
    pruned = channel_prune(_copy(model), ChannelPruneOptions(macs_fraction=0.5, epochs=args.channel_epochs), context)
    rows["channel_prune"] = measure(pruned, context, out_dir, "channel_prune", "1_channel_prune")
    console.log(f"clustering to {args.clusters} clusters per layer")
    clustered = cluster(_copy(model), ClusterOptions(clusters=args.clusters, epochs=args.cluster_epochs), context)
    rows["cluster"] = measure(clustered, context, out_dir, "cluster", "2_cluster")

    console.print(render_table(list(rows.values()), "accuracy"))
    verdicts = targets(rows)
    for goal, met, measured in verdicts:
        console.print(f"{'met ' if met else 'MISS'}  {goal}: {measured}")
    write_json_atomic(
        out_dir / "compress_keywords.json",
        {"rows": {name: to_dict(row) for name, row in rows.items()}, "targets": [{"target": g, "met": m, "measured": v} for g, m, v in verdicts], "epochs": {"channel_prune": args.channel_epochs, "cluster": args.cluster_epochs}},
    )


if __name__ == "__main__":
    main()
