"""Robustness: mutated and truncated real models through the loader and interpreter of the ASan+UBSan build.

Any out-of-bounds access, undefined behaviour or crash aborts the child process
and fails the test with the sanitizer report. Longer campaigns, e.g. an hour
per seed, are run by hand:
    python -c "from mcuforge.firmware.engine import fuzz; ...; print(fuzz(paths, seconds=3600, seed=7))"
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcuforge.firmware.engine import fuzz

MODELS = Path(__file__).resolve().parents[3] / "shared" / "models" / "tflite-micro"
SEEDS = [
    MODELS / "hello_world" / "hello_world_int8.tflite",
    MODELS / "micro_speech" / "micro_speech_quantized.tflite",
    MODELS / "person_detection" / "person_detect.tflite",
    MODELS / "mnist_lstm" / "trained_lstm_int8.tflite",
]


@pytest.mark.slow  # the sanitizer build alone takes ~30 s on a busy 2-core machine
def test_real_models_run_clean_under_sanitizers():
    """The unmutated seeds: three load and run under ASan/UBSan, the LSTM model is refused."""
    result = fuzz(SEEDS, seconds=60, iterations=len(SEEDS))
    assert result.iterations == len(SEEDS)
    assert result.loaded == result.invoked == 3


def one_op_seeds(directory: Path) -> list[Path]:
    """Models for the kernels the shared models lack: MAX_POOL_2D, QUANTIZE/DEQUANTIZE around a FULLY_CONNECTED,
    INT4 weights (a FULLY_CONNECTED of odd size, a DEPTHWISE_CONV_2D), and a DEPTHWISE_CONV_2D fused with its
    FULLY_CONNECTED small enough to be written as an image too (micro_speech's pair is not)."""
    import numpy as np
    import tensorflow as tf
    from oplib import convert
    from test_ops_fused import depthwise_fc_model
    from test_ops_int4 import with_int4_filter

    rng = np.random.default_rng(12)
    weights = tf.constant(rng.normal(size=(6, 3)).astype(np.float32))
    filters = tf.constant(rng.normal(size=(3, 3, 2, 1)).astype(np.float32))
    depthwise = lambda x: tf.nn.depthwise_conv2d(x, filters, [1, 1, 1, 1], "SAME")  # noqa: E731
    models = {
        "max_pool.tflite": convert(lambda x: tf.nn.max_pool2d(x, 2, 2, "SAME"), [(1, 5, 5, 2)], rng),
        "float_io.tflite": convert(lambda x: tf.matmul(x, weights), [(1, 6)], rng, io_type="float32"),
        "fc_int4.tflite": with_int4_filter(convert(lambda x: tf.matmul(x, weights[:5]), [(1, 5)], rng), rng),
        "depthwise_int4.tflite": with_int4_filter(convert(depthwise, [(1, 5, 5, 2)], rng), rng),
        "depthwise_fc.tflite": depthwise_fc_model(rng, (1, 12, 16, 4), (3, 3), 1, 1, "SAME", units=2),
    }
    for name, data in models.items():
        (directory / name).write_bytes(data)
    return [directory / name for name in models]


@pytest.mark.slow
def test_sixty_seconds_of_mutants_do_not_crash(tmp_path):
    result = fuzz([*SEEDS, *one_op_seeds(tmp_path)], seconds=60, seed=20261124)
    assert result.iterations > 1000
    assert result.loaded > 0  # some mutants still load and run: the interpreter is exercised too


def float_seeds(directory: Path) -> list[Path]:
    """float32 models: the shared two, one-op models of the float kernels they lack, and magic_wand's prepared image."""
    import numpy as np
    from floatlib import Tensor, one_op_model

    from mcuforge.firmware.prepared import prepared_image

    weights = np.linspace(-1, 1, 12, dtype=np.float32)
    models = {
        "add.tflite": one_op_model("ADD", [Tensor((2, 1, 3)), Tensor((4, 1), weights[:4].reshape(4, 1))], Tensor((2, 4, 3)),
                                   {"fusedActivationFunction": 1}),
        "mul.tflite": one_op_model("MUL", [Tensor((1, 3, 4)), Tensor((1, 3, 4))], Tensor((1, 3, 4)), {"fusedActivationFunction": 3}),
        "average_pool.tflite": one_op_model("AVERAGE_POOL_2D", [Tensor((1, 5, 4, 2))], Tensor((1, 3, 2, 2)),
                                            {"padding": 0, "strideH": 2, "strideW": 2, "filterHeight": 3, "filterWidth": 2}),
        "depthwise.tflite": one_op_model("DEPTHWISE_CONV_2D", [Tensor((1, 4, 4, 2)), Tensor((1, 2, 2, 4), weights[:8].repeat(2).reshape(1, 2, 2, 4)),
                                                               Tensor((4,), weights[:4])], Tensor((1, 4, 4, 4)), {"depthMultiplier": 2}),
        "quantize.tflite": one_op_model("QUANTIZE", [Tensor((2, 6))], Tensor((2, 6), dtype=np.int8, scale=0.05, zero_point=3)),
        "dequantize.tflite": one_op_model("DEQUANTIZE", [Tensor((2, 6), dtype=np.int8, scale=0.05, zero_point=3)], Tensor((2, 6))),
    }
    for name, data in models.items():
        (directory / name).write_bytes(data)
    image = directory / "magic_wand.image"
    image.write_bytes(prepared_image((MODELS / "magic_wand" / "magic_wand.tflite").read_bytes(), "portable").data)
    shared = [MODELS / "magic_wand" / "magic_wand.tflite", MODELS / "hello_world" / "hello_world_float.tflite"]
    return [*shared, *(directory / name for name in models), image]


@pytest.mark.slow
def test_float_models_and_their_mutants_run_clean(tmp_path):
    """The float seeds as they are all load and run (the image opens); then 10 s of their mutants."""
    seeds = float_seeds(tmp_path)
    clean = fuzz(seeds, seconds=60, iterations=len(seeds))
    assert clean.iterations == clean.loaded == len(seeds) and clean.invoked == len(seeds) - 1  # images are not invoked
    result = fuzz(seeds, seconds=10, seed=20261128)
    assert result.iterations > 1000 and result.invoked > 0
