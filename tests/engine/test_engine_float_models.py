"""The shared float32 models on the engine (interpreter and prepared image): outputs identical to TFLM's.

magic_wand (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, FULLY_CONNECTED, SOFTMAX
on float32) with its two upstream test arrays, whose known results
shared/MANIFEST.md gives (ring 0.80, slope 0.95), and random strokes;
hello_world_float over a sweep of x. Floats are compared bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from oplib import run_engine, run_prepared, run_tflm

MODELS = Path(__file__).resolve().parents[3] / "shared" / "models" / "tflite-micro"
MAGIC_WAND = MODELS / "magic_wand"
GESTURES = ("wing", "ring", "slope", "negative")  # the model's output order (MANIFEST.md)


def assert_bits_equal(model: bytes, samples: list[np.ndarray]) -> list[np.ndarray]:
    """Every sample through TFLM, the engine and its prepared image; the engine's outputs."""
    outputs = []
    for x in samples:
        want = run_tflm(model, [x])[0]
        for got in (run_engine(model, [x])[0], run_prepared(model, [x])[0]):
            assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        outputs.append(want)
    return outputs


@pytest.mark.parametrize(("array", "gesture", "score"), [("magic_wand_ring_*.npy", "ring", 0.80), ("magic_wand_slope_*.npy", "slope", 0.95)])
def test_magic_wand_known_results(array, gesture, score):
    stroke = np.load(next(MAGIC_WAND.glob(array))).astype(np.float32).reshape(1, 128, 3, 1)
    (probabilities,) = assert_bits_equal((MAGIC_WAND / "magic_wand.tflite").read_bytes(), [stroke])
    assert GESTURES[int(np.argmax(probabilities))] == gesture and round(float(probabilities.max()), 2) == score


def test_magic_wand_random_strokes():
    rng = np.random.default_rng(7)
    strokes = [rng.uniform(-600, 600, size=(1, 128, 3, 1)).astype(np.float32) for _ in range(3)]
    assert_bits_equal((MAGIC_WAND / "magic_wand.tflite").read_bytes(), strokes)


def test_hello_world_float_sweep():
    xs = np.linspace(-1.0, 7.5, 40, dtype=np.float32)
    outputs = assert_bits_equal((MODELS / "hello_world" / "hello_world_float.tflite").read_bytes(),
                                [np.array([[x]], np.float32) for x in xs])
    assert abs(float(outputs[int(np.argmin(abs(xs - np.pi / 2)))][0, 0]) - 1.0) < 0.1  # the model learned sin(x)
