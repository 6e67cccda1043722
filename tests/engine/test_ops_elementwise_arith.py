"""ADD, MUL, RELU, RELU6, LOGISTIC, TANH, HARD_SWISH: our int8 kernels against TFLM's reference kernels.

Every case is a one-op model made by TensorFlow's converter (shapes, broadcast
patterns, fused activations and the value ranges that set scales and zero
points come from seeded generators), run by the TFLM host interpreter and by our
engine; outputs must be equal as int32. The activations are also run on all 256
int8 input codes at once, so every code of every tested quantization is checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from oplib import assert_matches_tflm, convert, edited, random_inputs, run_engine, run_tflm

from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.firmware.engine import Engine, EngineError

# Schema ActivationFunctionType values, as the converter writes them into fused options.
FUSED = {"none": 0, "relu": 1, "relu6": 3}


def one_op_model(fn, shapes, rng, op: str, value_range=(-1.0, 1.0)) -> bytes:
    """Convert `fn` and check the converter really produced a single `op` (else the case tests nothing)."""
    model = convert(fn, shapes, rng, value_range=value_range)
    assert [o.opcode for o in parse_tflite(model).main.operators] == [op]
    return model


def random_range(rng: np.random.Generator) -> tuple[float, float]:
    """An asymmetric float range: a different scale and zero point for each draw."""
    return float(-rng.uniform(0.05, 8.0)), float(rng.uniform(0.05, 8.0))


def fused_activation(model: bytes) -> int:
    return parse_tflite(model).main.operators[0].options.fusedActivationFunction


def binary_fn(op: str, activation: str, constant: np.ndarray | None):
    """a (op) b, or a (op) constant, followed by an activation the converter fuses."""
    import tensorflow as tf

    combine = tf.add if op == "ADD" else tf.multiply
    act = {"none": lambda x: x, "relu": tf.nn.relu, "relu6": tf.nn.relu6}[activation]
    if constant is None:
        return lambda a, b: act(combine(a, b))
    return lambda a: act(combine(a, tf.constant(constant)))


# (shape of a, shape of b): equal shapes, trailing-axis, middle-axis and two-sided broadcasts, scalar.
BROADCASTS = [
    ((1, 4, 4, 3), (1, 4, 4, 3)),
    ((1, 4, 4, 3), (3,)),
    ((2, 3, 5), (2, 1, 5)),
    ((2, 1, 5), (1, 3, 1)),
    ((4, 1), (1, 6)),
    ((3, 7), ()),
    ((1, 2, 3, 2, 3), (2, 1, 2, 1)),
]


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("case", range(len(BROADCASTS)))
def test_binary_broadcasts_match_tflm(op, case):
    rng = np.random.default_rng(100 + case + (0 if op == "ADD" else 50))
    shape_a, shape_b = BROADCASTS[case]
    activation = ["none", "relu", "relu6"][case % 3]
    model = one_op_model(
        binary_fn(op, activation, None), [shape_a, shape_b], rng, op, value_range=[random_range(rng), random_range(rng)]
    )
    assert fused_activation(model) == FUSED[activation]
    assert_matches_tflm(model, rng)


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("seed", range(2))
def test_binary_with_constant_operand_matches_tflm(op, seed):
    """A constant second operand gets its own (weight) quantization, unrelated to the input's."""
    rng = np.random.default_rng(200 + seed + (0 if op == "ADD" else 50))
    constant = rng.uniform(-3.0, 5.0, size=(1, 5)).astype(np.float32)
    model = one_op_model(binary_fn(op, "none", constant), [(3, 5)], rng, op, value_range=random_range(rng))
    assert_matches_tflm(model, rng, trials=2)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("seed", range(12))
def test_binary_random_shapes_match_tflm(op, seed):
    """Random ranks 1-4, random axes broadcast from either side, random activations and ranges."""
    rng = np.random.default_rng(300 + seed + (0 if op == "ADD" else 50))
    rank = int(rng.integers(1, 5))
    shape = rng.integers(1, 6, size=rank)
    shape_a = tuple(int(d) if rng.random() < 0.7 else 1 for d in shape)
    shape_b = tuple(int(d) if rng.random() < 0.7 else 1 for d in shape)[int(rng.integers(0, rank)):]
    activation = str(rng.choice(list(FUSED)))
    model = one_op_model(
        binary_fn(op, activation, None), [shape_a, shape_b], rng, op, value_range=[random_range(rng), random_range(rng)]
    )
    assert_matches_tflm(model, rng)


def unary_fn(op: str):
    import tensorflow as tf

    return {
        "RELU": tf.nn.relu,
        "RELU6": tf.nn.relu6,
        "LOGISTIC": tf.sigmoid,
        "TANH": tf.tanh,
        # The converter fuses this pattern into one HARD_SWISH op.
        "HARD_SWISH": lambda x: x * tf.nn.relu6(x + 3.0) / 6.0,
    }[op]


UNARY_OPS = ["RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH"]
# Input ranges: symmetric, mostly negative, mostly positive, wide (saturating the sigmoids), narrow.
UNARY_RANGES = [(-1.0, 1.0), (-7.0, 0.5), (-0.3, 9.0), (-20.0, 20.0), (-0.05, 0.02)]


@pytest.mark.parametrize("op", UNARY_OPS)
@pytest.mark.parametrize("value_range", UNARY_RANGES)
def test_unary_every_input_code_matches_tflm(op, value_range):
    rng = np.random.default_rng(400 + UNARY_OPS.index(op) * 10 + UNARY_RANGES.index(value_range))
    model = one_op_model(unary_fn(op), [(1, 256)], rng, op, value_range=value_range)
    every_code = [np.arange(-128, 128, dtype=np.int8).reshape(1, 256)]
    want = run_tflm(model, every_code)[0]
    got = run_engine(model, every_code)[0]
    np.testing.assert_array_equal(got.astype(np.int32), want.astype(np.int32))


@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary_multidimensional_matches_tflm(op):
    rng = np.random.default_rng(500 + UNARY_OPS.index(op))
    model = one_op_model(unary_fn(op), [(2, 3, 4, 5)], rng, op, value_range=random_range(rng))
    assert_matches_tflm(model, rng)


def float_model(fn, shapes) -> bytes:
    """The same op left in float32: the converter without quantization."""
    import tensorflow as tf

    function = tf.function(fn, input_signature=[tf.TensorSpec(s, tf.float32) for s in shapes])
    return tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function).convert()


@pytest.mark.parametrize("op", UNARY_OPS)
def test_float_variant_is_refused_at_load_naming_the_op(op):
    """TFLM runs these ops in float too, but our engine runs them in int8 only: load must fail, not compute."""
    model = float_model(unary_fn(op), [(2, 3)])
    assert [o.opcode for o in parse_tflite(model).main.operators] == [op]
    with pytest.raises(EngineError) as refused:
        Engine(model)
    assert refused.value.status == "MF_ERR_UNSUPPORTED_TYPE"
    assert op in str(refused.value)


@pytest.mark.parametrize("op", ["ADD", "MUL"])
def test_float_variant_of_add_and_mul_runs_as_tflm(op):
    """ADD and MUL have float32 kernels (kernels/elementwise_float.c): the converter's float op gives TFLM's bits."""
    model = float_model(binary_fn(op, "none", None), [(2, 3), (2, 3)])
    assert [o.opcode for o in parse_tflite(model).main.operators] == [op]
    assert_matches_tflm(model, np.random.default_rng(3))


def set_output_quantization(scale: float | None = None, zero_point: int | None = None):
    """An edit giving the single op's output another scale or zero point than the converter chose."""

    def edit(tree):
        graph = tree.subgraphs[0]
        quantization = graph.tensors[graph.operators[0].outputs[0]].quantization
        if scale is not None:
            quantization.scale = [scale]
        if zero_point is not None:
            quantization.zeroPoint = [zero_point]

    return edit


def test_logistic_output_zero_point_other_than_minus_128_is_refused_like_tflm():
    rng = np.random.default_rng(600)
    model = edited(one_op_model(unary_fn("LOGISTIC"), [(1, 8)], rng, "LOGISTIC"), set_output_quantization(zero_point=-100))
    with pytest.raises(RuntimeError):
        run_tflm(model, random_inputs(model, rng))
    with pytest.raises(EngineError) as refused:
        Engine(model)
    assert refused.value.status == "MF_ERR_UNSUPPORTED_PARAM"
    assert "LOGISTIC" in str(refused.value)


def test_logistic_ignores_output_scale_like_tflm():
    """TFLM checks only the zero point and writes 1/256-scaled codes whatever the output scale says."""
    rng = np.random.default_rng(601)
    model = edited(one_op_model(unary_fn("LOGISTIC"), [(1, 64)], rng, "LOGISTIC"), set_output_quantization(scale=1 / 128))
    assert_matches_tflm(model, rng)


def test_hard_swish_output_multiplier_above_one_is_refused_like_tflm():
    """An output scale far below the input's makes TFLM's output exponent positive, which it rejects."""
    rng = np.random.default_rng(602)
    model = edited(one_op_model(unary_fn("HARD_SWISH"), [(1, 8)], rng, "HARD_SWISH"), set_output_quantization(scale=1e-6))
    with pytest.raises(RuntimeError):
        run_tflm(model, random_inputs(model, rng))
    with pytest.raises(EngineError) as refused:
        Engine(model)
    assert refused.value.status == "MF_ERR_UNSUPPORTED_PARAM"
    assert "HARD_SWISH" in str(refused.value)


@pytest.mark.parametrize("op", ["RELU6", "TANH"])
def test_output_quantization_ignored_like_tflm(op):
    """TFLM's RELU6 clamps the raw input and TANH writes 1/128-scaled codes, neither reading the
    output quantization: with another one edited in, both runtimes must still agree code for code."""
    rng = np.random.default_rng(610 + UNARY_OPS.index(op))
    model = one_op_model(unary_fn(op), [(1, 256)], rng, op, value_range=(-4.0, 7.0))
    model = edited(model, set_output_quantization(scale=0.05, zero_point=-17))
    every_code = [np.arange(-128, 128, dtype=np.int8).reshape(1, 256)]
    np.testing.assert_array_equal(run_engine(model, every_code)[0].astype(np.int32), run_tflm(model, every_code)[0].astype(np.int32))
