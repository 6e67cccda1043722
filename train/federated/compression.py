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

Plain (`none`) updates go as Flower's own float32 ndarrays of the full weights,
the format SecAgg+ masks. A tensor's shape is not sent: the server knows the model.
"""

from __future__ import annotations

import numpy as np

FLOAT = "numpy.ndarray"  # Flower's own tensor type: np.save bytes of full float32 weights
INT8 = "mcuforge.int8-delta"
TOPK = "mcuforge.topk-int8-delta"
TENSOR_TYPES = {"none": FLOAT, "int8": INT8, "topk": TOPK}  # the Parameters' tensor_type per federated.compression
_RAW, _INT8, _TOPK = 0, 1, 2  # the first byte of each encoded tensor
_SCALE = np.dtype("<f4")
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


def encode_update(
    delta: list[np.ndarray], method: str, fraction: float, residual: list[np.ndarray] | None, exact: list[bool]
) -> tuple[list[bytes], list[np.ndarray] | None]:
    """A compressed update's tensors and the client's new residual (top-k only; None otherwise).

    Tensors flagged `exact` (batch-norm statistics: a variance rounded or half-updated can turn
    negative) go as float32. Each tensor starts with one byte naming its encoding.
    """
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


def decode_update(tensors: list[bytes], tensor_type: str, global_weights: list[np.ndarray]) -> list[np.ndarray]:
    """The update (weights minus `global_weights`) a client's tensors carry, whatever its encoding."""
    from flwr.common import bytes_to_ndarray

    if tensor_type == FLOAT:
        return [bytes_to_ndarray(t).astype(np.float32) - g for t, g in zip(tensors, global_weights)]
    return [_decode_tensor(t, g.shape) for t, g in zip(tensors, global_weights)]
