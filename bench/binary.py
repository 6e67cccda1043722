"""Binarized networks (Larq) on the engine: accuracy, bytes and instructions (README "Binarized networks (Larq)").

    python bench/binary.py [--skip-digits] [--keywords EPOCHS] [--json OUT.json]   (make bench-binary)

1. digits: specs/digits_binary.yaml through `mcuforge run`'s stages (train, deploy, firmware on
   qemu-m4). Accuracy is the reference's (LCE ops by LCE's interpreter, float layers by TFLM:
   deploy/lce.py) on the whole test split; the firmware stage checks that the device gives the same
   bits on its test vectors. Bytes: the LCE .tflite against the float .tflite of the same network
   (train/model_float.tflite). Instructions per inference on qemu-m4 (prepared image, DSP kernels).
2. Binary convolution speed: one LceBconv2d (3x3, 64 -> 64 channels, 16x16, one-padding, bit-packed
   output as between two binary layers) after an LceQuantize, on qemu-m4 with the portable and the
   DSP kernels: (instructions of the model - those of the LceQuantize alone) / binary MACs.
3. Popcount methods: instructions per 32-bit word in the inner loop of the binary dot product as
   arm-none-eabi-gcc -O2 compiles it for Cortex-M4: the SWAR + USADA8 loop of
   kernels/dsp/mfd_binary.h against a 256-entry byte table (written here only), counted in the
   disassembly from the loop's backward branch to its target.
4. --keywords EPOCHS: the keywords spec with binary_cnn (stem stride 2) against its ds_cnn as float
   and int8 (post-training quantization), both trained EPOCHS epochs without compression, on
   --speakers synthesized speakers (the spec has 300; fewer keep the bench short, and both models
   see the same data).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from firmware_icount import REPO  # noqa: E402

from mcuforge.firmware.icount import instructions_per_inference  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "engine"))  # lce_oplib: LCE op models written with the schema
TARGET = "qemu-m4"
OUT = REPO / "build" / "bench" / "binary"
# The bconv speed case: (H, W, channels in), channels out, kernel.
SPEED_SHAPE, SPEED_OUT, SPEED_KERNEL = (16, 16, 64), 64, (3, 3)


def digits() -> dict:
    from mcuforge.pipeline import run_pipeline
    from mcuforge.spec import load_spec

    spec = load_spec(REPO / "specs" / "digits_binary.yaml")
    result = run_pipeline(spec, root=REPO / "build")
    layout = spec.layout(REPO / "build")
    evaluation = json.loads((layout.deploy / "evaluation.json").read_text())
    model = layout.deploy / "model_int8.tflite"
    float_bytes = (layout.train / "model_float.tflite").stat().st_size
    firmware = json.loads((layout.firmware(TARGET) / "run.json").read_text())
    from mcuforge.firmware.build import build_image

    image = build_image(model, TARGET, OUT / "digits", inputs=np.zeros((1, 8, 8, 1), np.float32))
    return {
        "accuracy_device": evaluation["tflm"],
        "accuracy_float_keras": evaluation["float_keras"],
        "vectors_bit_identical_on_qemu": firmware["identical_to_tflm"],
        "model_bytes": model.stat().st_size,
        "float_model_bytes": float_bytes,
        "smaller_than_float": float_bytes / model.stat().st_size,
        "instructions_per_inference": instructions_per_inference(image),
        "stages": [outcome.name for outcome in result.stages],
    }


def _speed_models() -> tuple[bytes, bytes]:
    import lce_oplib
    from lce_oplib import Bconv, Graph

    rng = np.random.default_rng(0)
    h, w, cin = SPEED_SHAPE
    bconv = lce_oplib.bconv_model(Bconv((1, h, w, cin), SPEED_OUT, SPEED_KERNEL, padding="SAME", output="bitpacked"), rng)
    g = Graph()
    x = g.tensor((1, h, w, cin), np.float32)
    packed = g.tensor((1, h, w, lce_oplib.words(cin)), np.int32)
    g.op("LceQuantize", [x], [packed])
    return bconv, g.model([x], [packed])


def _count(data: bytes, name: str, kernels: str) -> int:
    from mcuforge.firmware.build import build_image

    path = OUT / f"{name}.tflite"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    vectors = np.random.default_rng(1).normal(size=(1, *SPEED_SHAPE)).astype(np.float32)
    return instructions_per_inference(build_image(path, TARGET, OUT / f"{name}_{kernels}", inputs=vectors, kernels=kernels))


def bconv_speed() -> dict:
    bconv, quantize_only = _speed_models()
    h, w, cin = SPEED_SHAPE
    macs = h * w * SPEED_OUT * SPEED_KERNEL[0] * SPEED_KERNEL[1] * cin
    figures = {"binary_macs": macs}
    for kernels in ("portable", "dsp"):
        total = _count(bconv, "bconv", kernels)
        base = _count(quantize_only, "quantize", kernels)
        figures[kernels] = {"instructions": total - base, "per_binary_mac": (total - base) / macs}
    return figures


_TABLE_METHOD = r"""
#include <stdint.h>
#include "mfd_binary.h"
int32_t swar_usada8(const uint32_t *a, const uint32_t *b, int32_t words) { return mfd_xor_popcount(a, b, words); }
extern const uint8_t bits_in_byte[256];
int32_t byte_table(const uint32_t *a, const uint32_t *b, int32_t words)
{
    int32_t total = 0, i;
    for (i = 0; i < words; ++i) {
        const uint32_t x = a[i] ^ b[i];
        total += bits_in_byte[x & 0xFFu] + bits_in_byte[(x >> 8) & 0xFFu] + bits_in_byte[(x >> 16) & 0xFFu] + bits_in_byte[x >> 24];
    }
    return total;
}
"""
# Words per iteration of each method's first loop: the asm loop takes two, the table loop one.
_WORDS_PER_LOOP = {"swar_usada8": 2, "byte_table": 1}


def popcount_methods() -> dict:
    import re
    import subprocess
    import tempfile

    runtime = REPO / "firmware" / "runtime"
    flags = ["-std=c99", "-O2", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    with tempfile.TemporaryDirectory() as folder:
        source, obj = Path(folder) / "popcount.c", Path(folder) / "popcount.o"
        source.write_text(_TABLE_METHOD)
        subprocess.run(["arm-none-eabi-gcc", *flags, f"-I{runtime}", f"-I{runtime / 'kernels' / 'dsp'}", "-c", str(source), "-o", str(obj)], check=True)
        listing = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True, text=True, check=True).stdout
    figures = {}
    for name, words in _WORDS_PER_LOOP.items():
        body = listing.split(f"<{name}>:")[1].split("\n\n")[0]
        addresses = [int(m[1], 16) for m in re.finditer(r"^\s*([0-9a-f]+):", body, re.M)]
        branches = re.finditer(r"^\s*([0-9a-f]+):.*\sb(?:ne|cc|cs|lt|gt|le|ge)(?:\.n|\.w)?\s+([0-9a-f]+)", body, re.M)
        end, start = next((int(m[1], 16), int(m[2], 16)) for m in branches if int(m[2], 16) < int(m[1], 16))
        figures[name] = sum(start <= a <= end for a in addresses) / words
    return {"instructions_per_word": figures}


def keywords(epochs: int, speakers: int) -> dict:
    from mcuforge.deploy.convert import convert
    from mcuforge.deploy.evaluate import evaluate
    from mcuforge.firmware.build import build_image
    from mcuforge.spec import load_spec
    from mcuforge.train.trainer import train

    base = load_spec(REPO / "specs" / "keywords.yaml")
    base = replace(base, data=replace(base.data, options={**base.data.options, "speakers": speakers}))
    figures = {"epochs": epochs, "speakers": speakers}
    variants = {
        "binary": replace(base, name="keywords_binary_bench", model=replace(base.model, arch="binary_cnn", width=1.0, options={"stem_stride": 2}),
                          deploy=replace(base.deploy, io_type="float32")),
        "int8": replace(base, name="keywords_int8_bench"),
    }
    for kind, spec in variants.items():
        spec = replace(spec, train=replace(spec.train, epochs=epochs), compress=replace(spec.compress, steps=[]))
        layout = spec.layout(OUT)
        train(spec, layout.train)
        converted = convert(spec, root=OUT, source=layout.train / "model.h5", out_dir=layout.deploy)
        evaluation = evaluate(spec, root=OUT, model_path=converted.model_path, source=layout.train / "model.h5")
        shape = tuple(converted_input_shape(converted.model_path))
        image = build_image(converted.model_path, TARGET, OUT / f"keywords_{kind}", inputs=np.zeros((1, *shape[1:]), np.float32))
        figures[kind] = {
            "accuracy_device": evaluation.tflm,
            "accuracy_float_keras": evaluation.float_keras,
            "model_bytes": converted.size,
            "float_model_bytes": (layout.train / "model_float.tflite").stat().st_size,
            "instructions_per_inference": instructions_per_inference(image),
        }
    return figures


def converted_input_shape(model_path: Path) -> list[int]:
    from mcuforge.deploy.tflite_model import read_tflite

    return list(read_tflite(model_path).main.input_tensors[0].shape)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--keywords", type=int, default=0, metavar="EPOCHS", help="also the keywords comparison, trained EPOCHS epochs")
    parser.add_argument("--speakers", type=int, default=300, help="synthesized speakers of the keywords data set")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--json", type=Path, default=REPO / "build" / "bench" / "binary.json")
    args = parser.parse_args(argv)
    figures = {"popcount": popcount_methods()}
    if not args.skip_speed:
        figures["bconv_speed"] = bconv_speed()
    print(json.dumps(figures, indent=2))
    if not args.skip_digits:
        figures["digits"] = digits()
        print(json.dumps(figures["digits"], indent=2))
    if args.keywords:
        figures["keywords"] = keywords(args.keywords, args.speakers)
        print(json.dumps(figures["keywords"], indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
