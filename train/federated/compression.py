"""How a client encodes its model update for the uplink, and how the server decodes it.

Uplinks cost energy per byte, so a client may send its update (local minus
global weights) compressed instead of its float32 weights:

- `int8`: each tensor as int8 values times one float32 scale (max |value| / 127): 1 byte a value.
- `topk`: each tensor's largest-magnitude `fraction` of values, as uint16/uint32
  indices plus int8 values and a scale. What a client leaves out (and the int8
  rounding) is its error-feedback residual, added to its next update so nothing
  is lost for good; the residual stays on the client (in its Flower context state).
- batch-norm statistics go as float32 in both (small, and a rounded or
  half-updated variance can turn negative).
- `int4`: the whole update as one packed tensor (one record entry, so Flower's
  per-array framing is paid once): each weight tensor (rotated first when it
  is whole 64-value blocks: `rotate`) as 4-bit values in [-7, 7] times one
  bfloat16 scale (max |value| / 7, rounded up), rounded stochastically (unbiased: no error
  feedback needed, so it suits clients sampled rarely), two values a byte;
  batch-norm statistics as int8 rounded to nearest (the variance's slot
  carries the change of the second moment against the global one, small next
  to the moment itself; the server clamps pooled variances at 0).

Plain (`none`) updates go as Flower's own float32 ndarrays of the full weights,
the format SecAgg+ masks. A tensor's shape is not sent: the server knows the model.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FLOAT = "numpy.ndarray"  # Flower's own tensor type: np.save bytes of full float32 weights
INT8 = "mcuforge.int8-delta"
TOPK = "mcuforge.topk-int8-delta"
INT4 = "mcuforge.int4"
TENSOR_TYPES = {"none": FLOAT, "int8": INT8, "topk": TOPK, "int4": INT4}  # the Parameters' tensor_type per federated.compression
_RAW, _INT8, _TOPK = 0, 1, 2  # the first byte of each encoded tensor
INT4_LEVELS = 7  # 4-bit values in [-7, 7]
ROTATION_BLOCK, ROTATION_SEED = 64, 0x5167  # int4 rotates tensors of whole 64-value blocks before rounding
_SCALE = np.dtype("<f4")
_HALF_SCALE = np.dtype("<u2")  # int4's scales: bfloat16, float32's top 16 bits
_COUNT = np.dtype("<u4")


def _quantize(values: np.ndarray) -> tuple[np.float32, np.ndarray]:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    scale = np.float32(peak / 127.0 if peak > 0 else 1.0)
    return scale, np.clip(np.rint(values / scale), -127, 127).astype(np.int8)


def _index_dtype(size: int) -> np.dtype:
    return np.dtype("<u2") if size <= 1 << 16 else np.dtype("<u4")


def encode_int8(delta: np.ndarray) -> bytes:
    scale, q = _quantize(delta.astype(np.float32).ravel())
    return np.asarray(scale, _SCALE).tobytes() + q.tobytes()


def decode_int8(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    scale = np.frombuffer(data[: _SCALE.itemsize], _SCALE)[0]
    q = np.frombuffer(data[_SCALE.itemsize :], np.int8)
    return (q.astype(np.float32) * scale).reshape(shape)


def encode_topk(delta: np.ndarray, fraction: float) -> bytes:
    flat = delta.astype(np.float32).ravel()
    k = max(1, int(round(fraction * flat.size)))
    kept = np.sort(np.argpartition(np.abs(flat), flat.size - k)[flat.size - k :])
    scale, q = _quantize(flat[kept])
    return np.asarray(k, _COUNT).tobytes() + np.asarray(scale, _SCALE).tobytes() + kept.astype(_index_dtype(flat.size)).tobytes() + q.tobytes()


def decode_topk(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    k = int(np.frombuffer(data[:4], _COUNT)[0])
    scale = np.frombuffer(data[4:8], _SCALE)[0]
    index_dtype = _index_dtype(size)
    end = 8 + k * index_dtype.itemsize
    kept = np.frombuffer(data[8:end], index_dtype)
    flat = np.zeros(size, np.float32)
    flat[kept] = np.frombuffer(data[end:], np.int8).astype(np.float32) * scale
    return flat.reshape(shape)


def bfloat16_at_least(value: float) -> np.float32:
    """The smallest bfloat16 (float32's top 16 bits) not below positive `value`: a scale sent in 2 bytes
    that still maps the peak inside the levels."""
    bits = int(np.asarray(value, np.float32).view(np.uint32))
    if bits & 0xFFFF:
        bits = (bits | 0xFFFF) + 1
    return np.asarray(bits, np.uint32).view(np.float32)[()]


def _bfloat16_bytes(scale: np.float32) -> bytes:
    return np.asarray(int(np.asarray(scale, np.float32).view(np.uint32)) >> 16, _HALF_SCALE).tobytes()


def _bfloat16_from(data: bytes) -> np.float32:
    return np.asarray(int(np.frombuffer(data, _HALF_SCALE)[0]) << 16, np.uint32).view(np.float32)[()]


def _scale_for(values: np.ndarray, levels: int) -> np.float32:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    return bfloat16_at_least(peak / levels if peak > 0 else 1.0)


def stochastic_int4(values: np.ndarray, rng: np.random.Generator) -> tuple[np.float32, np.ndarray]:
    """(scale, q) with q in [-7, 7] and E[q * scale] = values: each value rounds up with its fractional part's chance.
    The scale is a bfloat16 at or just above peak / 7."""
    scale = _scale_for(values, INT4_LEVELS)
    scaled = values.astype(np.float64) / np.float64(scale)
    low = np.floor(scaled)
    q = low + (rng.random(values.shape) < scaled - low)
    return scale, np.clip(q, -INT4_LEVELS, INT4_LEVELS).astype(np.int8)


def pack_nibbles(q: np.ndarray) -> bytes:
    """Values in [-8, 7] as two's-complement nibbles, the first value in the low nibble; an odd count pads with 0."""
    nibbles = (q.astype(np.int16) & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes()


def unpack_nibbles(data: bytes, count: int) -> np.ndarray:
    packed = np.frombuffer(data, np.uint8)
    nibbles = np.empty(2 * packed.size, np.int16)
    nibbles[0::2], nibbles[1::2] = packed & 0xF, packed >> 4
    return np.where(nibbles > 7, nibbles - 16, nibbles)[:count].astype(np.int8)


@lru_cache(maxsize=None)
def _hadamard() -> np.ndarray:
    """The orthonormal Walsh-Hadamard matrix of ROTATION_BLOCK (Sylvester's construction; symmetric, its own inverse)."""
    h = np.ones((1, 1))
    while h.shape[0] < ROTATION_BLOCK:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(ROTATION_BLOCK)


@lru_cache(maxsize=64)
def _signs(size: int) -> np.ndarray:
    return np.random.default_rng([ROTATION_SEED, size]).choice(np.array([-1.0, 1.0]), size)


def rotate(flat: np.ndarray) -> np.ndarray:
    """Random signs, then a Hadamard transform per block of ROTATION_BLOCK values (tensors of whole blocks only).

    An update's few large values (heavy tails) set a 4-bit scale that rounds most others to 0 or one
    step; rotated, each block's energy spreads evenly (nearly Gaussian), so the peak sits a few RMS
    above the rest and the steps are finer. Orthonormal: the rounding error keeps its size and stays
    unbiased through `unrotate`. The signs are fixed per tensor size: the server needs no seed.
    """
    if flat.size % ROTATION_BLOCK:
        return flat
    return ((flat * _signs(flat.size)).reshape(-1, ROTATION_BLOCK) @ _hadamard()).ravel()


def unrotate(flat: np.ndarray) -> np.ndarray:
    if flat.size % ROTATION_BLOCK:
        return flat
    return (flat.reshape(-1, ROTATION_BLOCK) @ _hadamard()).ravel() * _signs(flat.size)


def encode_int4(delta: list[np.ndarray], exact: list[bool], rng: np.random.Generator) -> bytes:
    """The whole update in one buffer: per tensor a bfloat16 scale, then int8 values (`exact`) or packed 4-bit ones."""
    parts = []
    for values, keep in zip(delta, exact):
        flat = values.astype(np.float32).ravel()
        if keep:
            scale = _scale_for(flat, 127)
            q = np.clip(np.rint(flat / scale), -127, 127).astype(np.int8)
            parts.append(_bfloat16_bytes(scale) + q.tobytes())
        else:
            scale, q = stochastic_int4(rotate(flat.astype(np.float64)), rng)
            parts.append(_bfloat16_bytes(scale) + pack_nibbles(q))
    return b"".join(parts)


def decode_int4(data: bytes, shapes: list[tuple[int, ...]], exact: list[bool]) -> list[np.ndarray]:
    tensors, offset = [], 0
    for shape, keep in zip(shapes, exact):
        size = int(np.prod(shape))
        scale = _bfloat16_from(data[offset : offset + _HALF_SCALE.itemsize])
        offset += _HALF_SCALE.itemsize
        length = size if keep else (size + 1) // 2
        chunk = data[offset : offset + length]
        offset += length
        if keep:
            values = np.frombuffer(chunk, np.int8).astype(np.float32) * scale
        else:
            values = unrotate(unpack_nibbles(chunk, size).astype(np.float64) * np.float64(scale)).astype(np.float32)
        tensors.append(values.reshape(shape))
    if offset != len(data):
        raise ValueError(f"an int4 update of {len(data)} bytes does not fit the model's tensors ({offset} bytes)")
    return tensors


def encode_update(
    delta: list[np.ndarray], method: str, fraction: float, residual: list[np.ndarray] | None, exact: list[bool],
    rng: np.random.Generator | None = None,
) -> tuple[list[bytes], list[np.ndarray] | None]:
    """A compressed update's tensors and the client's new residual (top-k only; None otherwise).

    Tensors flagged `exact` (batch-norm statistics: a variance rounded or half-updated can turn
    negative) go as float32 (int8 for `int4`). Each int8 or top-k tensor starts with one byte naming
    its encoding; `int4` sends one tensor for the whole update, rounded stochastically with `rng`.
    """
    if method == "int4":
        if rng is None:
            raise ValueError("int4 rounds stochastically: pass the client's seeded rng")
        return [encode_int4(delta, exact, rng)], None
    if method not in ("int8", "topk"):
        raise ValueError(f"no delta encoding {method!r}: plain updates send full weights")
    corrected = [d + r for d, r in zip(delta, residual)] if residual is not None else delta
    tensors = []
    for values, keep_exact in zip(corrected, exact):
        if keep_exact:
            tensors.append(bytes([_RAW]) + values.astype(_SCALE).tobytes())
        elif method == "int8":
            tensors.append(bytes([_INT8]) + encode_int8(values))
        else:
            tensors.append(bytes([_TOPK]) + encode_topk(values, fraction))
    if method != "topk":
        return tensors, None
    sent = [_decode_tensor(t, c.shape) for t, c in zip(tensors, corrected)]
    return tensors, [c - s for c, s in zip(corrected, sent)]


def _decode_tensor(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    kind, payload = data[0], data[1:]
    if kind == _RAW:
        return np.frombuffer(payload, _SCALE).astype(np.float32).reshape(shape)
    return (decode_int8 if kind == _INT8 else decode_topk)(payload, shape)


def decode_update(
    tensors: list[bytes], tensor_type: str, global_weights: list[np.ndarray], exact: list[bool] | None = None
) -> list[np.ndarray]:
    """The update (weights minus `global_weights`) a client's tensors carry, whatever its encoding
    (`exact` marks the batch-norm statistics, which `int4` sends as int8)."""
    from flwr.common import bytes_to_ndarray

    if tensor_type == FLOAT:
        return [bytes_to_ndarray(t).astype(np.float32) - g for t, g in zip(tensors, global_weights)]
    if tensor_type == INT4:
        if exact is None:
            raise ValueError("an int4 update needs the model's batch-norm statistics marked (exact)")
        return decode_int4(tensors[0], [g.shape for g in global_weights], exact)
    return [_decode_tensor(t, g.shape) for t, g in zip(tensors, global_weights)]
