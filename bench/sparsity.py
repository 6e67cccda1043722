"""Sparse weights on the device: the keywords DS-CNN dense int8 against 2:4 pruned, in flash and instructions.

    .venv/bin/python bench/sparsity.py [--keras build/keywords/train/model.h5] [--spec specs/digits.yaml]
        [--prune-epochs 6] [--json OUT.json]

The DS-CNN of specs/keywords.yaml (49x10 MFCC, 12 outputs) is converted to
int8 as trained (or, without --keras, with seeded random weights) and with
2:4 magnitude pruning on every Conv2D and Dense layer: in each group of four
consecutive weights of an output channel's window ([h][w][in] flattened,
TFLite's order) the two of least magnitude become zero. Where the input
channels come in fours (the pointwise convolutions and the classifier) the
groups lie along them, the mask tfmot's prune step converges to; the first
convolution (one input channel) is grouped along its 10 x 4 window rows. A
third model has the 2:4 model's 1x1 filters as INT4 (as 4-bit QAT writes
them; first convolution and classifier at 8 bits, the quantize step's
default), stored as 2:4 with 4-bit values; a fourth is the 2:4 model with its
depthwise kernels 2:4 too, along their channels at each tap (the prune step's
`depthwise: true`).
No fine-tuning here (the keywords data set is synthesized, which takes longer
than this bench); accuracy after the prune step is what `mcuforge compress`
reports for a spec with `prune: {pattern: "2:4"}`.

With --spec, the same comparison with accuracy: the spec's trained model
(trained first if build/ lacks it) as int8 against the prune step with
`pattern: "2:4"` and with 50 % unstructured sparsity (bitmaps where they
pay), each fine-tuned, then int8, all through the compress stage's
own measurement (TFLM on the test split, engine image bytes).

Per model: the prepared image (model flash on the device) and its arena, instructions per
inference on qemu-m4 (qemu-icount plugin, bench/firmware_icount.py) with the
DSP and the portable kernel sets, and the outputs of the sparse image against
TFLM on the pruned .tflite for random inputs (must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_icount import measure  # noqa: E402
from firmware_icount import REPO  # noqa: E402
from image_bytes import breakdown  # noqa: E402

OUT = REPO / "build" / "bench" / "sparsity"
JSON_OUT = REPO / "build" / "bench" / "sparsity.json"
SHAPE, CLASSES = (49, 10, 1), 12
FLASH_TARGET, INSTRUCTIONS_TARGET = 0.65, 0.7


def keywords_model(keras_path: Path | None):
    """The keywords DS-CNN: trained weights from `keras_path`, else seeded random ones."""
    import mcuforge  # noqa: F401  (Keras 2 before TensorFlow)
    import tf_keras

    from mcuforge.train import zoo

    if keras_path is not None:
        return tf_keras.models.load_model(keras_path, compile=False)
    tf_keras.utils.set_random_seed(0)
    return zoo.build("ds_cnn", SHAPE, CLASSES, 1.0)


def prune_two_four(model, depthwise: bool) -> list[str]:
    """Zero the two smallest-magnitude weights of each four along each output channel's flattened window
    (with `depthwise`, depthwise kernels too: along the channels at each tap), in place; the layers pruned."""
    import tf_keras

    from mcuforge.compress.prune import two_four_mask

    pruned = []
    for layer in model.layers:
        if not isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D, tf_keras.layers.Dense)):
            continue
        weights = layer.get_weights()
        kernel = weights[0]  # (..., input channels, outputs); depthwise: (h, w, channels, multiplier)
        along_channels = isinstance(layer, tf_keras.layers.DepthwiseConv2D)
        if (not depthwise and along_channels) or (
                kernel.shape[-2] * kernel.shape[-1] if along_channels else kernel[..., 0].size) % 4:
            continue
        weights[0] = kernel * two_four_mask(kernel, along_channels)
        layer.set_weights(weights)
        pruned.append(layer.name)
    return pruned


def converted(model, name: str) -> Path:
    """`model` as int8 .tflite (seeded calibration data), written under OUT."""
    from mcuforge.deploy.convert import convert_model

    representative = np.random.default_rng(0).normal(size=(64, *SHAPE)).astype(np.float32)
    path = OUT / f"{name}.tflite"
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(convert_model(model, representative))
    tmp.replace(path)
    return path


def equal_to_tflm(path: Path, trials: int = 5) -> bool:
    """The DSP image's outputs against TFLM's on random int8 inputs."""
    sys.path.insert(0, str(REPO / "tests" / "engine"))
    from oplib import random_inputs, run_tflm

    from mcuforge.firmware.prepared import PreparedEngine, prepared_image

    model = path.read_bytes()
    rng = np.random.default_rng(18)
    with PreparedEngine.from_image(prepared_image(model, "dsp"), "dsp") as engine:
        for _ in range(trials):
            inputs = random_inputs(model, rng)
            if not all(np.array_equal(a, b) for a, b in zip(engine.invoke(inputs), run_tflm(model, inputs))):
                return False
    return True


def with_int4_pointwise(path: Path) -> Path:
    """The 2:4 model with its 1x1 convolutions' filters as packed INT4 (what 4-bit QAT and TF's converter
    write; the first convolution and the classifier stay 8-bit, the quantize step's default): each int8
    value / 16 rounded into [-8, 7] (zeros stay zeros, so 2:4 holds), each channel's scale times 16."""
    from ai_edge_litert import schema_py_generated as schema

    sys.path.insert(0, str(REPO / "tests" / "engine"))
    from oplib import edited
    from test_ops_int4 import INT4, pack_int4

    def edit(tree):
        graph = tree.subgraphs[0]
        for op in graph.operators:
            code = tree.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.CONV_2D:
                continue
            tensor = graph.tensors[op.inputs[1]]
            if list(tensor.shape[1:3]) != [1, 1]:
                continue
            values = np.frombuffer(bytes(tree.buffers[tensor.buffer].data), np.int8).astype(np.float64)
            tree.buffers[tensor.buffer].data = np.frombuffer(pack_int4(np.clip(np.round(values / 16), -8, 7)), np.uint8)
            tensor.quantization.scale = [scale * 16 for scale in tensor.quantization.scale]
            tensor.type = INT4

    out = path.with_name("two_four_int4.tflite")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_bytes(edited(path.read_bytes(), edit))
    tmp.replace(out)
    return out


def figures(path: Path) -> dict:
    from mcuforge.firmware.prepared import prepared_image

    model = path.read_bytes()
    image = prepared_image(model, "dsp")
    return {
        "tflite_bytes": len(model),
        "image_bytes": len(image.data),
        "arena_bytes": image.arena_bytes,  # what the firmware reports (tests/test_bench_engine.py)
        "image_sections": breakdown(image.data)["sections"],
        "dsp_instructions": measure(path, "prepared", "dsp", False).instructions,
        "portable_instructions": measure(path, "prepared", "portable", False).instructions,
    }


def filter_bytes(sections: dict) -> int:
    """The bytes of an image's filters as stored: dense, 2:4 values and positions, bitmaps."""
    return sum(size for item, size in sections.items() if item.startswith(("dense filter", "2:4 ", "bitmap")))


def print_sections(models: dict[str, dict]) -> None:
    """The images' bytes by section side by side, and the flash ratio no encoding of the other bytes goes below."""
    items = sorted({item for row in models.values() for item in row["image_sections"]},
                   key=lambda item: -max(row["image_sections"].get(item, 0) for row in models.values()))
    print("\nprepared image (DSP kernels) by section, B:")
    print(f"{'':<28}" + "".join(f"{name:>16}" for name in models))
    for item in items:
        print(f"{item:<28}" + "".join(f"{row['image_sections'].get(item, 0):>16,}" for row in models.values()))
    dense = models["dense int8"]
    dense_filters = filter_bytes(dense["image_sections"])
    for name, row in models.items():
        filters = filter_bytes(row["image_sections"])
        if name != "dense int8":
            print(f"{name}: filters {filters:,} B, {filters / dense_filters:.3f}x the dense ones; other bytes "
                  f"{row['image_bytes'] - filters:,} B (dense: {dense['image_bytes'] - dense_filters:,}). Where the "
                  "other bytes are the same in both images, no encoding of them takes the image ratio below the "
                  "filters' ratio.")


def spec_rows(spec_path: Path, epochs: int) -> dict:
    """The spec's trained model and its 2:4 prune step, measured as the compress stage measures steps."""
    from mcuforge.compress.common import Context
    from mcuforge.compress.pipeline import measure as measure_step
    from mcuforge.compress.prune import PruneOptions, prune
    from mcuforge.config import to_dict
    from mcuforge.layout import KERAS_MODEL_FILE
    from mcuforge.spec import load_spec
    from mcuforge.train.trainer import load_dataset, load_model, train

    spec = load_spec(spec_path)
    train_dir = spec.layout(REPO / "build").train
    if not (train_dir / KERAS_MODEL_FILE).exists():
        train(spec, train_dir)
    context = Context(spec, load_dataset(spec))
    out_dir = OUT / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(train_dir / KERAS_MODEL_FILE)
    rows = {"int8": measure_step(model, context, out_dir, "int8", "int8")}
    pruned = prune(model, PruneOptions(pattern="2:4", epochs=epochs), context)
    rows["prune 2:4"] = measure_step(pruned, context, out_dir, "prune 2:4", "prune_2_4")
    pruned = prune(load_model(train_dir / KERAS_MODEL_FILE), PruneOptions(sparsity=0.5, epochs=epochs), context)
    rows["prune 50 %"] = measure_step(pruned, context, out_dir, "prune 50 %", "prune_50")
    record = {}
    for name, row in rows.items():
        path = out_dir / row.tflite
        record[name] = {**to_dict(row), "dsp_instructions": measure(path, "prepared", "dsp", False).instructions,
                        "portable_instructions": measure(path, "prepared", "portable", False).instructions}
    return {"spec": str(spec_path), "prune_epochs": epochs, "rows": record}


def print_spec(record: dict) -> None:
    rows = record["rows"]
    print(f"\n{record['spec']}: trained int8 against the prune step ({record['prune_epochs']} epochs) + int8")
    print(f"{'':<12}{'accuracy':>10}{'.tflite B':>11}{'image B':>9}{'DSP insn':>12}{'portable insn':>15}")
    for name, row in rows.items():
        print(f"{name:<12}{row['metric']:>10.4f}{row['int8_bytes']:>11,}{row['image_bytes']:>9,}"
              f"{row['dsp_instructions']:>12,}{row['portable_instructions']:>15,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", type=Path, help="trained keywords Keras model (default: seeded random weights)")
    parser.add_argument("--spec", type=Path, help="also measure this spec's trained model against its 2:4 prune step")
    parser.add_argument("--prune-epochs", type=int, default=6, help="fine-tuning epochs of the 2:4 prune step")
    parser.add_argument("--json", type=Path, default=JSON_OUT)
    args = parser.parse_args()
    model = keywords_model(args.keras)
    dense = figures(converted(model, "dense"))
    layers = prune_two_four(model, depthwise=False)
    sparse_path = converted(model, "two_four")
    sparse = figures(sparse_path)
    int4_path = with_int4_pointwise(sparse_path)
    int4 = figures(int4_path)
    depthwise_layers = prune_two_four(model, depthwise=True)  # the prune step's `depthwise: true`
    depthwise = figures(converted(model, "two_four_depthwise"))
    for row, name in [(sparse, "two_four"), (int4, "two_four_int4"), (depthwise, "two_four_depthwise")]:
        row["equal_to_tflm"] = equal_to_tflm(OUT / f"{name}.tflite")
    record = {"weights": str(args.keras) if args.keras else "seeded random", "pruned_layers": layers,
              "depthwise_pruned_layers": depthwise_layers, "dense": dense, "two_four": sparse,
              "two_four_int4": int4, "two_four_depthwise": depthwise}
    print(f"weights: {record['weights']}; 2:4 on {len(layers)} layers: {', '.join(layers)}; "
          f"with depthwise: {len(depthwise_layers)}")
    columns = {"2:4": sparse, "2:4, 4-bit 1x1": int4, "2:4 + depthwise": depthwise}
    print(f"{'':<28}{'dense int8':>14}" + "".join(f"{name:>16}{'ratio':>8}" for name in columns))
    for key, label in [("image_bytes", "model flash (image), B"), ("tflite_bytes", ".tflite, B"),
                       ("arena_bytes", "arena, DSP kernels, B"), ("dsp_instructions", "instructions, DSP"),
                       ("portable_instructions", "instructions, portable")]:
        print(f"{label:<28}{dense[key]:>14,}" + "".join(f"{row[key]:>16,}{row[key] / dense[key]:>7.3f}x"
                                                         for row in columns.values()))
    print("images equal to TFLM on their models: " + ", ".join(f"{name} {row['equal_to_tflm']}"
                                                            for name, row in columns.items()))
    for label, ratio, target in [("flash", sparse["image_bytes"] / dense["image_bytes"], FLASH_TARGET),
                                 ("DSP instructions", sparse["dsp_instructions"] / dense["dsp_instructions"], INSTRUCTIONS_TARGET)]:
        if ratio > target:
            print(f"target missed: {label} {ratio:.3f}x > {target}x")
    if int4["image_bytes"] / dense["image_bytes"] > FLASH_TARGET:
        print(f"target missed by the 4-bit 2:4 model too: flash {int4['image_bytes'] / dense['image_bytes']:.3f}x")
    print_sections({"dense int8": dense, **columns})
    if args.spec is not None:
        record["spec"] = spec_rows(args.spec, args.prune_epochs)
        print_spec(record["spec"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_name(f".{args.json.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(args.json)


if __name__ == "__main__":
    main()
