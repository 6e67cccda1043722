"""4-bit weights against 8-bit: accuracy through TFLM, weight and model bytes, arena (ours and TFLM's), instructions.

Runs on demand (it trains: on an idle 2-core machine about a minute for digits; for keywords
about two minutes of float training at 15 epochs, then a minute or two per run):

    .venv/bin/python bench/int4.py [--spec specs/keywords.yaml] [--root build]
        [--train-epochs N] [--qat-epochs 2] [--qat-learning-rate 1e-4] [--qat-seed N]
        [--layer-bits logits=4 ...]

From the spec's trained float model (trained first when missing, with
--train-epochs if given), two QAT models are fine-tuned for the same epochs,
learning rate (the spec's schedule over the QAT epochs) and seed (the spec's
unless --qat-seed: another seed gives the QAT runs' noise on one float model):
8-bit weights, and weight_bits 4 (first and last weighted layers at 8 unless
--layer-bits says otherwise). Each is converted by TF's converter and
measured: accuracy of the int8 model through the TFLM host interpreter on the
test split; weight bytes (the filters of CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED: INT4 ones packed two a byte); .tflite and prepared image
bytes; the arena TFLM measures (it unpacks INT4 filters into its arena) and
ours (the prepared image's activations and kernel scratch, from the qemu-m4
firmware's report); instructions per inference on qemu-m4 (prepared image,
DSP kernels, and portable kernels): each kernel set runs INT4 filters through
its own INT4 loops (the DSP ones: kernels/dsp/*_int4.c). Writes
<root>/<name>/bench/int4.json and the .tflite files.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mcuforge  # noqa: E402,F401  (sets the Keras 2 environment before TensorFlow loads)
from compress_keywords import trained  # noqa: E402
from engine_icount import measure as measure_on_qemu  # noqa: E402
from mcuforge.artifacts import write_json_atomic  # noqa: E402
from mcuforge.compress.common import Context  # noqa: E402
from mcuforge.compress.pipeline import measure  # noqa: E402
from mcuforge.compress.quantize import QuantizeOptions, quantize  # noqa: E402
from mcuforge.spec import load_spec  # noqa: E402

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _copy(model):
    import tf_keras

    clone = tf_keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def filter_bytes(path: Path) -> tuple[int, int]:
    """(bytes of every conv and dense filter as stored, how many of those filters are INT4)."""
    from mcuforge.deploy.tflite_model import read_tflite

    graph = read_tflite(path).main
    filters = [graph.tensor(op.inputs[1]) for op in graph.operators if op.opcode in WEIGHT_OPS]
    return sum(t.nbytes for t in filters), sum(t.dtype == "int4" for t in filters)


def figures(model, context: Context, out_dir: Path, name: str) -> dict:
    """One row: the QAT model converted, measured through TFLM, our host build and qemu-m4."""
    from mcuforge.firmware.prepared import prepared_image

    row = measure(model, context, out_dir, name, name)
    path = out_dir / row.tflite
    weights, int4_filters = filter_bytes(path)
    device = measure_on_qemu(path, "prepared", "dsp", False)
    portable = measure_on_qemu(path, "prepared", "portable", False)
    return {
        "accuracy": row.metric,
        "weight_bytes": weights,
        "int4_filters": int4_filters,
        "tflite_bytes": row.int8_bytes,
        "prepared_image_bytes": len(prepared_image(path.read_bytes(), "dsp").data),
        "tflm_arena_bytes": row.arena_bytes,
        "arena_bytes": device.arena,
        "instructions": device.instructions,
        "portable_arena_bytes": portable.arena,
        "portable_instructions": portable.instructions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=Path("specs/keywords.yaml"))
    parser.add_argument("--root", type=Path, default=Path("build"))
    parser.add_argument("--train-epochs", type=int, default=None, help="float training epochs [default: the spec's]")
    parser.add_argument("--qat-epochs", type=int, default=2, help="QAT fine-tuning epochs, both models")
    parser.add_argument("--qat-learning-rate", type=float, default=QuantizeOptions.learning_rate, help="QAT peak learning rate, both models")
    parser.add_argument("--qat-seed", type=int, default=None, help="QAT seed, both models [default: the spec's train seed]")
    parser.add_argument("--layer-bits", nargs="*", default=[], help="NAME=BITS overrides for the 4-bit model")
    args = parser.parse_args()

    from rich.console import Console

    console = Console(width=120)
    spec = load_spec(args.spec)
    if args.train_epochs is not None:
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, epochs=args.train_epochs))
    context, model, out_dir = trained(spec, args.root, console)
    if args.qat_seed is not None:
        context = dataclasses.replace(context, spec=dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=args.qat_seed)))
    layer_bits = {name: int(bits) for name, bits in (item.split("=") for item in args.layer_bits)}

    rows = {}
    for name, options in (
        ("int8", QuantizeOptions(epochs=args.qat_epochs, learning_rate=args.qat_learning_rate)),
        ("int4", QuantizeOptions(epochs=args.qat_epochs, learning_rate=args.qat_learning_rate, weight_bits=4, layer_weight_bits=layer_bits)),
    ):
        console.log(f"{name}: QAT for {args.qat_epochs} epochs, then TFLM, the host engine and qemu-m4")
        rows[name] = figures(quantize(_copy(model), options, context), context, out_dir, name)

    eight, four = rows["int8"], rows["int4"]
    console.print(
        f"{spec.name}: float {spec.train.epochs} epochs, QAT {args.qat_epochs} epochs at {args.qat_learning_rate:g}, "
        f"seed {context.spec.train.seed}, 4-bit layers {layer_bits or 'default'}"
    )
    console.print(f"{'':24}{'8-bit':>12}{'4-bit':>12}{'ratio':>8}")
    for key in [k for k in eight if k != "int4_filters"]:
        ratio = four[key] / eight[key] if eight[key] else float("nan")
        console.print(f"{key:24}{eight[key]:>12,.4g}{four[key]:>12,.4g}{ratio:>8.3f}" if key == "accuracy" else f"{key:24}{eight[key]:>12,}{four[key]:>12,}{ratio:>8.3f}")
    lost = eight["accuracy"] - four["accuracy"]
    console.print(f"accuracy points lost: {100 * lost:+.2f} ({round(lost * len(context.dataset.y_test)):+d} of {len(context.dataset.y_test):,} test clips)")
    write_json_atomic(
        out_dir / "int4.json",
        {
            "spec": spec.name,
            "train_epochs": spec.train.epochs,
            "qat_epochs": args.qat_epochs,
            "qat_learning_rate": args.qat_learning_rate,
            "qat_seed": context.spec.train.seed,
            "layer_bits": layer_bits,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
