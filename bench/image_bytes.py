"""Where a model's flash goes: a prepared image's bytes by section and by op, and the .tflite's filters.

    .venv/bin/python bench/image_bytes.py MODEL.tflite [MODEL.tflite ...] [--kernels dsp]

Read from the image itself (runtime/mf_prepared.h): the header, the ops (9
words and the tensor indices each), the tensor descriptors (12 words each, one
per tensor of the model, read or not), the I/O lists, and the data section,
split by what each byte holds: an affine op's record (mf_affine_data), its
requantization (mf_requant: 8 B a channel, or one for all), folded biases and
encoded filters (kernels/mf_sparse.h: 2:4 values and positions, bitmaps),
other ops' records, options tables, the constant tensors the ops read (dense
filters, biases, others) and alignment gaps. The items add up to the image.

The filter table lists each CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
filter of the .tflite: its type, bytes, value range and distinct values, and whether an int8
filter's values all fit in 4 bits (it could then be stored as INT4, exactly).
"""

from __future__ import annotations

import argparse
import struct
from collections import Counter
from pathlib import Path

import numpy as np

# mf_prepared.h: header words, op and tensor descriptor words, where a tensor is
_HEADER_WORDS, _OP_WORDS, _TENSOR_WORDS = 15, 9, 12
_OP_COUNT, _TENSOR_COUNT, _INPUT_COUNT, _OUTPUT_COUNT, _OPS, _TENSORS, _DATA = 5, 6, 7, 8, 9, 10, 12
_WHERE_CONSTANT = 2
# mf_kernel.h: the affine kernels' registry codes (TFLite builtin codes) and the encoded filter formats
_AFFINE = (3, 4, 9)
_FUSED_DEPTHWISE_FC = 2000
_SPARSE_2_4, _BITMAP, _SPARSE_2_4_INT4 = 2, 3, 4
# mf_affine.h: mf_affine_data from its start to weights_at; mf_fixedpoint.h: sizeof(mf_requant)
_RECORD = struct.Struct("<iiiihhbbhhhi")
_REQUANT_BYTES = 8
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _op_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    return {**names, _FUSED_DEPTHWISE_FC: "DEPTHWISE_CONV_2D+FULLY_CONNECTED"}


def _tensor_bytes(type_code: int, dims: list[int]) -> int:
    from mcuforge.deploy.tflite_model import NUMPY_DTYPES, tensor_type_names

    count = int(np.prod(dims, dtype=np.int64))
    name = tensor_type_names()[type_code]
    return (count + 1) // 2 if name == "int4" else count * np.dtype(NUMPY_DTYPES[name]).itemsize


def _affine_items(image: bytes, at: int, size: int, filter_dims: list[int]) -> Counter:
    """An affine op's record split into its fields, requantization, folded biases and encoded filter."""
    (_, _, _, channels, _, _, _, channel_step, _, weights, folded, weights_at) = _RECORD.unpack_from(image, at)
    requant = _REQUANT_BYTES * (channels if channel_step else 1)
    encoded = size - weights_at if weights_at > 0 else 0
    items = Counter({"record": size - requant - encoded, "requantization": requant})
    if folded:
        items["folded biases"] = 4 * channels
        encoded -= 4 * channels
    if weights in (_SPARSE_2_4, _SPARSE_2_4_INT4):  # mf_sparse.h's [C][K]: a depthwise filter is one row
        rows, k = filter_dims[0], int(np.prod(filter_dims[1:]))
        values = rows * k // (4 if weights == _SPARSE_2_4_INT4 else 2)
        items["2:4 values (4-bit)" if weights == _SPARSE_2_4_INT4 else "2:4 values"] = values
        items["2:4 positions"] = rows * -(-k // 8)
        items["alignment"] = encoded - values - items["2:4 positions"]
    elif weights == _BITMAP:
        items["bitmap and values"] = encoded
    return +items


def breakdown(image: bytes) -> dict:
    """{"total": bytes, "sections": {item: bytes}, "ops": [{"op": name, item: bytes, ...}]}: the sections'
    items add up to the total; each op's items are its share of them."""
    words = struct.unpack_from(f"<{len(image) // 4}I", image)
    names = _op_names()
    tensors = []
    for t in range(words[_TENSOR_COUNT]):
        w = words[words[_TENSORS] // 4 + t * _TENSOR_WORDS:][:_TENSOR_WORDS]
        tensors.append({"type": w[0], "dims": list(w[2:2 + w[1]]), "where": w[10] & 0xFF, "offset": w[11]})
    data = words[_DATA]
    read = set()  # data-section offsets of constants already counted (a constant two ops read)
    ops = []
    pos = words[_OPS] // 4
    for _ in range(words[_OP_COUNT]):
        key, n_in, n_out, record_at, record_bytes, options_at, options_bytes = words[pos:pos + 7]
        indices = [i if i < 2 ** 31 else -1 for i in words[pos + _OP_WORDS:pos + _OP_WORDS + n_in + n_out]]
        pos += _OP_WORDS + n_in + n_out
        code = key & 0xFFFFF
        items = Counter({"op words": 4 * (_OP_WORDS + n_in + n_out), "options": options_bytes})
        if code in _AFFINE and record_bytes >= _RECORD.size:
            items += _affine_items(image, data + record_at, record_bytes, tensors[indices[1]]["dims"])
        else:
            items["record (other ops)"] += record_bytes
        for slot, index in enumerate(indices[:n_in]):
            tensor = tensors[index] if index >= 0 else None
            if tensor is None or tensor["where"] != _WHERE_CONSTANT or tensor["offset"] in read:
                continue
            read.add(tensor["offset"])
            kind = {1: "dense filter", 2: "bias"}.get(slot) if code in _AFFINE else None
            if kind == "dense filter" and tensor["type"] == 17:  # INT4
                kind += " (4-bit)"
            items[kind or "constant"] += _tensor_bytes(tensor["type"], tensor["dims"])
        ops.append({"op": names.get(code, str(code)), **+items})
    sections = Counter({"header": 4 * _HEADER_WORDS, "tensor descriptors": 4 * _TENSOR_WORDS * len(tensors),
                        "I/O lists": 4 * (words[_INPUT_COUNT] + words[_OUTPUT_COUNT])})
    for op in ops:
        sections.update({("ops" if item == "op words" else item): size for item, size in op.items() if item != "op"})
    sections["alignment"] += len(image) - sum(sections.values())
    return {"total": len(image), "sections": dict(+sections), "ops": ops}


def filter_table(model: bytes) -> list[dict]:
    """Each conv, depthwise and fully connected filter of the .tflite: type, bytes, value range, and whether it
    is int8 with every value in [-8, 7]."""
    from mcuforge.deploy.tflite_model import parse_tflite

    graph = parse_tflite(model, "model").main
    rows = []
    for op in graph.operators:
        if op.opcode not in WEIGHT_OPS:
            continue
        tensor = graph.tensor(op.inputs[1])
        values = tensor.array()
        rows.append({"op": op.opcode, "tensor": tensor.name, "type": tensor.dtype, "shape": list(tensor.shape),
                     "bytes": tensor.nbytes, "min": int(values.min()), "max": int(values.max()),
                     "distinct": len(np.unique(values)),
                     "int8_fits_4_bits": tensor.dtype == "int8" and -8 <= values.min() and values.max() <= 7})
    return rows


def print_breakdown(label: str, result: dict) -> None:
    print(f"{label}: {result['total']:,} B")
    for item, size in sorted(result["sections"].items(), key=lambda kv: -kv[1]):
        print(f"  {item:<28}{size:>8,}")
    columns = sorted({item for op in result["ops"] for item in op if item != "op"})
    print("  by op:" + " " * 28 + "".join(f"{c[:13]:>14}" for c in columns))
    for n, op in enumerate(result["ops"]):
        print(f"  {n:>2} {op['op'][:30]:<31}" + "".join(f"{op.get(c, 0):>14,}" for c in columns))


def print_filters(rows: list[dict]) -> None:
    total = sum(row["bytes"] for row in rows)
    print(f"  filters: {total:,} B")
    for row in rows:
        note = "int8 values fit in 4 bits" if row["int8_fits_4_bits"] else ""
        print(f"  {row['op']:<19}{str(row['shape']):<17}{row['type']:<6}{row['bytes']:>7,}"
              f"  [{row['min']}, {row['max']}], {row['distinct']} values {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help=".tflite models")
    parser.add_argument("--kernels", default="dsp", choices=["dsp", "portable"], help="the kernel set's prepare")
    args = parser.parse_args()
    from mcuforge.firmware.prepared import prepared_image

    for path in args.models:
        model = path.read_bytes()
        print_breakdown(f"{path} (prepared image, {args.kernels} kernels)", breakdown(prepared_image(model, args.kernels).data))
        print_filters(filter_table(model))


if __name__ == "__main__":
    main()
