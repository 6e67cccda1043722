"""Whole models on the engine: outputs identical to TFLM's, known results, arena beside TFLM's.

The shared models come from the tflite-micro repository (see shared/MANIFEST.md,
which also gives the known results used here). TFLM's arena figures on a 32-bit
target (measured on an emulated Cortex-M4, issue 5) are the yardstick: the
engine's whole arena (its state, tables and activations) must be at most 0.8x.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from oplib import run_tflm

from mcuforge.firmware.engine import Engine, EngineError

MODELS = Path(__file__).resolve().parents[3] / "shared" / "models" / "tflite-micro"
# TFLM's whole arena for the model on a 32-bit Cortex-M4 (issue 5).
TFLM_ARENA_32BIT = {
    "hello_world/hello_world_int8.tflite": 676,
    "micro_speech/micro_speech_quantized.tflite": 6788,
    "person_detection/person_detect.tflite": 82292,
}


def load(name: str) -> bytes:
    return (MODELS / name).read_bytes()


def assert_same_as_tflm(model: bytes, samples: list[np.ndarray]) -> None:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model)
    with Engine(model) as engine:
        for x in samples:
            interpreter.reset()
            interpreter.set_input(x, 0)
            interpreter.invoke()
            expected = interpreter.get_output(0)
            np.testing.assert_array_equal(engine.invoke([x])[0].astype(np.int32), expected.astype(np.int32))


def test_hello_world_every_input_code_and_known_result():
    model = load("hello_world/hello_world_int8.tflite")
    samples = [np.array([[code]], dtype=np.int8) for code in range(-128, 128)]
    assert_same_as_tflm(model, samples)
    with Engine(model) as engine:
        assert int(engine.invoke([np.array([[-64]], dtype=np.int8)])[0][0, 0]) == 126  # sin(pi/2), MANIFEST.md


def test_micro_speech_100_random_spectrograms():
    rng = np.random.default_rng(5)
    samples = [rng.integers(-128, 128, size=(1, 1960)).astype(np.int8) for _ in range(100)]
    assert_same_as_tflm(load("micro_speech/micro_speech_quantized.tflite"), samples)


def read_person_bmp(name: str) -> np.ndarray:
    """MANIFEST.md's recipe: pixels at byte 1078, rows bottom-up, bytes reinterpreted as int8."""
    raw = (MODELS / "person_detection" / "testdata" / name).read_bytes()
    pixels = np.frombuffer(raw[1078 : 1078 + 96 * 96], dtype=np.int8).reshape(96, 96)
    return pixels[::-1].reshape(1, 96, 96, 1).copy()


def test_person_detect_random_images_and_known_results():
    model = load("person_detection/person_detect.tflite")
    rng = np.random.default_rng(6)
    samples = [rng.integers(-128, 128, size=(1, 96, 96, 1)).astype(np.int8) for _ in range(10)]
    assert_same_as_tflm(model, samples)
    with Engine(model) as engine:
        assert engine.invoke([read_person_bmp("person.bmp")])[0].tolist() == [[-113, 113]]
        assert engine.invoke([read_person_bmp("no_person.bmp")])[0].tolist() == [[57, -57]]


@pytest.mark.parametrize("name", sorted(TFLM_ARENA_32BIT))
def test_arena_at_most_0_8_of_tflm(name):
    with Engine(load(name)) as engine:
        used = engine.arena_used
    assert used <= 0.8 * TFLM_ARENA_32BIT[name]


# Models within issue 14's aim of 0.6x TFLM's arena; micro_speech is not (its 4,000 B depthwise output alone is 0.59x).
WITHIN_0_6 = ["hello_world/hello_world_int8.tflite", "person_detection/person_detect.tflite"]


@pytest.mark.parametrize("kernels", ["portable", "dsp"])
@pytest.mark.parametrize("name", WITHIN_0_6)
def test_interpreter_and_prepared_arenas_at_most_0_6_of_tflm(name, kernels):
    """Records share the bytes of the planning records, scratch buffers fill holes of their op, in-place outputs."""
    from mcuforge.firmware.prepared import prepared_image

    model = load(name)
    with Engine(model, kernels=kernels) as engine:
        used = engine.arena_used  # 64-bit host: its model state is larger than on a 32-bit core
    assert used <= 0.6 * TFLM_ARENA_32BIT[name]
    assert prepared_image(model, kernels).arena_bytes <= 0.6 * TFLM_ARENA_32BIT[name]


@pytest.mark.parametrize("name", sorted(TFLM_ARENA_32BIT))
def test_runs_in_exactly_the_arena_it_reports(name):
    """arena_used is the true need: loading into that many bytes works, one byte less fails naming the need."""
    model = load(name)
    with Engine(model) as engine:
        used = engine.arena_used
    rng = np.random.default_rng(8)
    with Engine(model, arena_bytes=used) as engine:
        x = [rng.integers(-128, 128, size=shape).astype(dtype) for shape, dtype in engine.input_specs()]
        np.testing.assert_array_equal(engine.invoke(x)[0], run_tflm(model, x)[0])
    with pytest.raises(EngineError) as caught:
        Engine(model, arena_bytes=used - 1)
    assert caught.value.status == "MF_ERR_ARENA_TOO_SMALL"
    assert f"needs an arena of {used} bytes" in str(caught.value)


def test_lstm_model_fails_at_load_naming_the_op():
    with pytest.raises(EngineError) as caught:
        Engine(load("mnist_lstm/trained_lstm_int8.tflite"))
    assert caught.value.status == "MF_ERR_UNSUPPORTED_OP"
    assert caught.value.fault_name == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in str(caught.value)
