"""Robustness of the ADD ... TRANSPOSE kernels: their one-op models, as they are and mutated,
through the ASan+UBSan build of the engine.

The real models that seed the engine's own fuzz test use none of these ops, so
this corpus is what reaches their prepare/eval code with hostile shapes, options,
quantization and constant tensors. A crash or undefined behaviour fails the test
with the sanitizer report.
"""

from __future__ import annotations

import numpy as np
import pytest
from oplib import convert

from mcuforge.firmware.engine import fuzz


@pytest.fixture(scope="module")
def op_models(tmp_path_factory) -> list:
    """One small int8 model per kernel, written to files for the fuzz child process."""
    import tensorflow as tf

    rng = np.random.default_rng(9000)
    cases = {
        "add": (lambda a, b: tf.nn.relu(a + b), [(2, 1, 5), (1, 3, 1)]),
        "mul": (lambda a, b: a * b, [(2, 3, 5), (2, 1, 5)]),
        "relu": (tf.nn.relu, [(1, 10)]),
        "relu6": (tf.nn.relu6, [(1, 10)]),
        "logistic": (tf.sigmoid, [(1, 12)]),
        "tanh": (tf.tanh, [(1, 12)]),
        "hard_swish": (lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, [(1, 12)]),
        "concatenation": (lambda a, b: tf.concat([a, b], axis=-1), [(1, 3, 4), (1, 3, 2)]),
        "pad": (lambda x: tf.pad(x, [[0, 0], [1, 2], [0, 3]]), [(1, 3, 4)]),
        "mean": (lambda x: tf.reduce_mean(x, axis=[1, 2]), [(1, 4, 5, 3)]),
        "strided_slice": (lambda x: x[:, 1:5:2, ::-1], [(1, 6, 4)]),
        "transpose": (lambda x: tf.transpose(x, [0, 2, 1, 3]), [(1, 2, 3, 4)]),
    }
    folder = tmp_path_factory.mktemp("op_models")
    paths = []
    for name, (fn, shapes) in cases.items():
        path = folder / f"{name}.tflite"
        path.write_bytes(convert(fn, shapes, rng, value_range=(-3.0, 2.0)))
        paths.append(path)
    return paths


@pytest.mark.slow  # the sanitizer build alone takes ~30 s on a busy 2-core machine
def test_op_models_run_clean_under_sanitizers(op_models):
    result = fuzz(op_models, seconds=60, iterations=len(op_models))
    assert result.loaded == result.invoked == len(op_models)


@pytest.mark.slow
def test_twenty_seconds_of_mutated_op_models_do_not_crash(op_models):
    result = fuzz(op_models, seconds=20, seed=20261124)
    assert result.iterations > 1000
    assert result.invoked > 0  # mutants still load and run: the kernels' eval is exercised too
