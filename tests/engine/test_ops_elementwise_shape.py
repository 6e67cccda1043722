"""CONCATENATION, PAD, MEAN, STRIDED_SLICE, TRANSPOSE: our int8 kernels against TFLM's reference kernels.

Every case is a one-op model made by TensorFlow's converter (axes, paddings,
begin/end/strides and masks, permutations and value ranges from seeded
generators), run by the TFLM host interpreter and by our engine; outputs must be
equal as int32. A few cases edit the converted flatbuffer to reach variants the
converter does not emit (MEAN with equal input and output quantization, options
TFLM rejects).
"""

from __future__ import annotations

import numpy as np
import pytest
from oplib import assert_matches_tflm, convert, edited, random_inputs, run_tflm

from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.firmware.engine import Engine, EngineError


def one_op_model(fn, shapes, rng, op: str, value_range=(-1.0, 1.0)) -> bytes:
    """Convert `fn` and check the converter produced `op`, alone or behind the QUANTIZE ops it
    inserts to give CONCATENATION inputs one scale (else the case would test something else)."""
    model = convert(fn, shapes, rng, value_range=value_range)
    opcodes = [o.opcode for o in parse_tflite(model).main.operators]
    assert opcodes[-1] == op and set(opcodes[:-1]) <= {"QUANTIZE"}
    return model


def random_range(rng: np.random.Generator) -> tuple[float, float]:
    return float(-rng.uniform(0.05, 6.0)), float(rng.uniform(0.05, 6.0))


def refusal(model: bytes) -> EngineError:
    with pytest.raises(EngineError) as refused:
        Engine(model)
    return refused.value


# --- CONCATENATION ---------------------------------------------------------------------------------


def concat_case(rng: np.random.Generator):
    rank = int(rng.integers(1, 5))
    axis = int(rng.integers(-rank, rank))
    base = [int(d) for d in rng.integers(1, 5, size=rank)]
    shapes = []
    for _ in range(int(rng.integers(2, 5))):
        shape = list(base)
        shape[axis] = int(rng.integers(1, 5))
        shapes.append(tuple(shape))
    return shapes, axis


@pytest.mark.parametrize("seed", range(4))
def test_concatenation_matches_tflm(seed):
    import tensorflow as tf

    rng = np.random.default_rng(1000 + seed)
    shapes, axis = concat_case(rng)
    model = one_op_model(lambda *xs: tf.concat(list(xs), axis=axis), shapes, rng, "CONCATENATION", value_range=random_range(rng))
    assert_matches_tflm(model, rng)


def test_concatenation_of_differently_scaled_inputs_matches_tflm():
    """Different input ranges: the converter requantizes inputs to the output scale first."""
    import tensorflow as tf

    rng = np.random.default_rng(1010)
    model = one_op_model(
        lambda a, b: tf.concat([a, b], axis=1), [(2, 3), (2, 4)], rng, "CONCATENATION", value_range=[(-1.0, 1.0), (-5.0, 2.0)]
    )
    assert_matches_tflm(model, rng)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_concatenation_random_cases_match_tflm(seed):
    import tensorflow as tf

    rng = np.random.default_rng(1100 + seed)
    shapes, axis = concat_case(rng)
    model = one_op_model(lambda *xs: tf.concat(list(xs), axis=axis), shapes, rng, "CONCATENATION", value_range=random_range(rng))
    assert_matches_tflm(model, rng)


def test_concatenation_with_fused_activation_is_refused_like_tflm():
    """TFLM's CONCATENATION rejects a fused activation; so must we, at load, naming the op."""
    import tensorflow as tf

    rng = np.random.default_rng(1020)
    model = one_op_model(lambda a, b: tf.concat([a, b], axis=0), [(2, 3), (1, 3)], rng, "CONCATENATION")

    def set_relu(tree):
        tree.subgraphs[0].operators[-1].builtinOptions.fusedActivationFunction = 1

    bad = edited(model, set_relu)
    with pytest.raises(RuntimeError):
        run_tflm(bad, random_inputs(bad, rng))
    error = refusal(bad)
    assert error.status == "MF_ERR_UNSUPPORTED_PARAM"
    assert "CONCATENATION" in str(error)


def test_concatenation_of_inputs_quantized_unlike_the_output_is_refused_like_tflm():
    """TFLM copies int8 codes, so it rejects an input whose scale differs from the output's (the
    converter inserts QUANTIZE ops instead): edit one input's quantization, both must refuse."""
    import tensorflow as tf

    rng = np.random.default_rng(1030)
    model = one_op_model(lambda a, b: tf.concat([a, b], axis=1), [(2, 3), (2, 4)], rng, "CONCATENATION")

    def requantize_first_input(tree):
        graph = tree.subgraphs[0]
        quantization = graph.tensors[graph.operators[-1].inputs[0]].quantization
        quantization.scale, quantization.zeroPoint = [0.5], [40]

    bad = edited(model, requantize_first_input)
    with pytest.raises(RuntimeError):
        run_tflm(bad, random_inputs(bad, rng))
    error = refusal(bad)
    assert error.status == "MF_ERR_UNSUPPORTED_PARAM"
    assert "CONCATENATION" in str(error)


# --- PAD -------------------------------------------------------------------------------------------


def pad_case(rng: np.random.Generator):
    rank = int(rng.integers(1, 5))
    shape = tuple(int(d) for d in rng.integers(1, 5, size=rank))
    paddings = [[int(rng.integers(0, 3)), int(rng.integers(0, 3))] for _ in range(rank)]
    paddings[int(rng.integers(0, rank))][int(rng.integers(0, 2))] += 1  # all-zero paddings convert to no op
    return shape, paddings


@pytest.mark.parametrize("seed", range(4))
def test_pad_matches_tflm(seed):
    """The pad value must be the output zero point: asymmetric ranges make it far from 0."""
    import tensorflow as tf

    rng = np.random.default_rng(2000 + seed)
    shape, paddings = pad_case(rng)
    low, high = random_range(rng)
    model = one_op_model(lambda x: tf.pad(x, paddings), [shape], rng, "PAD", value_range=(low, high + 2.0 * seed))
    assert_matches_tflm(model, rng)


def test_pad_fills_with_the_output_zero_point_like_tflm():
    """With the output zero point edited away from the input's, TFLM pads with the output's and
    copies input codes unchanged."""
    import tensorflow as tf

    rng = np.random.default_rng(2010)
    model = one_op_model(lambda x: tf.pad(x, [[1, 1], [2, 0]]), [(2, 3)], rng, "PAD")

    def move_output_zero_point(tree):
        graph = tree.subgraphs[0]
        graph.tensors[graph.operators[-1].outputs[0]].quantization.zeroPoint = [77]

    padded = edited(model, move_output_zero_point)
    assert_matches_tflm(padded, rng)
    assert (run_tflm(padded, random_inputs(padded, rng))[0][0] == 77).all()  # the first row is all padding


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_pad_random_cases_match_tflm(seed):
    import tensorflow as tf

    rng = np.random.default_rng(2100 + seed)
    shape, paddings = pad_case(rng)
    model = one_op_model(lambda x: tf.pad(x, paddings), [shape], rng, "PAD", value_range=random_range(rng))
    assert_matches_tflm(model, rng)


# --- MEAN ------------------------------------------------------------------------------------------

# (input shape, axes, keepdims): the 4D spatial mean of pooling heads (one with 1600 values per
# mean, so 1/count takes 10 bits of the multiplier), single and multiple axes, negative and
# repeated axes, three axes, everything; a reduced axis between kept ones, and two reduced axes apart
# (runs along the inner one, counted along the outer).
MEAN_CASES = [
    ((1, 5, 4, 3), [1, 2], True),
    ((3, 5, 9), [1], False),
    ((2, 6, 3, 8), [0, 2], True),
    ((1, 40, 40, 2), [1, 2], True),
    ((2, 3, 4, 6), [1, 2], False),
    ((3, 7), [-1], False),
    ((2, 3, 4), [0, 2, -1], True),
    ((2, 3, 4, 5), [1, 2, 3], False),
    ((4, 5), [0, 1], False),
]


@pytest.mark.parametrize("case", range(len(MEAN_CASES)))
def test_mean_matches_tflm(case):
    import tensorflow as tf

    rng = np.random.default_rng(3000 + case)
    shape, axes, keepdims = MEAN_CASES[case]
    model = one_op_model(
        lambda x: tf.reduce_mean(x, axis=axes, keepdims=keepdims), [shape], rng, "MEAN", value_range=random_range(rng)
    )
    assert_matches_tflm(model, rng)


@pytest.mark.parametrize("value_range", [(-2.0, 3.0), (-0.5, 6.0)])
def test_mean_with_equal_quantization_matches_tflm(value_range):
    """Same scale and zero point in and out, which older TFLM computed differently (raw sum /
    count, truncating) and the converter never emits: the output quantization is edited in."""
    import tensorflow as tf

    rng = np.random.default_rng(3010 + int(value_range[1]))
    model = one_op_model(lambda x: tf.reduce_mean(x, axis=[1, 2]), [(2, 4, 3, 5)], rng, "MEAN", value_range=value_range)

    def output_like_input(tree):
        graph = tree.subgraphs[0]
        mean = graph.operators[-1]
        graph.tensors[mean.outputs[0]].quantization = graph.tensors[mean.inputs[0]].quantization

    same = edited(model, output_like_input)
    graph = parse_tflite(same).main
    assert graph.output_tensors[0].quantization == graph.input_tensors[0].quantization
    assert_matches_tflm(same, rng, trials=4)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_mean_random_axes_match_tflm(seed):
    import tensorflow as tf

    rng = np.random.default_rng(3100 + seed)
    rank = int(rng.integers(1, 5))
    shape = tuple(int(d) for d in rng.integers(1, 6, size=rank))
    axes = sorted({int(a) for a in rng.integers(-rank, rank, size=int(rng.integers(1, rank + 1)))})
    keepdims = bool(rng.integers(0, 2))
    model = one_op_model(
        lambda x: tf.reduce_mean(x, axis=axes, keepdims=keepdims), [shape], rng, "MEAN", value_range=random_range(rng)
    )
    assert_matches_tflm(model, rng)


# --- STRIDED_SLICE ---------------------------------------------------------------------------------


def random_slice(rng: np.random.Generator, size: int):
    """One axis of a Python slice: None bounds become begin/end masks, an int shrinks the axis."""
    kind = rng.random()
    if kind < 0.15:
        return int(rng.integers(-size, size))
    step = int(rng.choice([1, 1, 2, 3, -1, -2]))
    begin = None if rng.random() < 0.3 else int(rng.integers(-size - 1, size + 2))
    end = None if rng.random() < 0.3 else int(rng.integers(-size - 1, size + 2))
    return slice(begin, end, step)


def slice_case(rng: np.random.Generator):
    """A shape and a slice tuple that selects at least one element on every kept axis."""
    while True:
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 7, size=rank))
        index = tuple(random_slice(rng, d) for d in shape)
        if np.zeros(shape)[index].size > 0:
            return shape, index


@pytest.mark.parametrize("seed", range(5))
def test_strided_slice_matches_tflm(seed):
    rng = np.random.default_rng(4000 + seed)
    shape, index = slice_case(rng)
    model = one_op_model(lambda x: x[index], [shape], rng, "STRIDED_SLICE", value_range=random_range(rng))
    assert_matches_tflm(model, rng)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(16))
def test_strided_slice_random_cases_match_tflm(seed):
    rng = np.random.default_rng(4100 + seed)
    shape, index = slice_case(rng)
    model = one_op_model(lambda x: x[index], [shape], rng, "STRIDED_SLICE", value_range=random_range(rng))
    assert_matches_tflm(model, rng)


def test_strided_slice_with_steps_beyond_the_axis_matches_tflm():
    """Steps of 2**30 take one element; stride times row size overflows int32 if computed eagerly."""
    rng = np.random.default_rng(4010)
    model = one_op_model(lambda x: x[:, :: 2**30, -1 :: -(2**30)], [(2, 5, 4)], rng, "STRIDED_SLICE")
    assert_matches_tflm(model, rng)


def test_strided_slice_with_offset_option_is_refused():
    """TFLM silently ignores `offset` (end relative to begin); computing without it would be wrong."""
    rng = np.random.default_rng(4020)
    model = one_op_model(lambda x: x[:, 1:3], [(2, 5)], rng, "STRIDED_SLICE")

    def set_offset(tree):
        tree.subgraphs[0].operators[-1].builtinOptions.offset = True

    error = refusal(edited(model, set_offset))
    assert error.status == "MF_ERR_UNSUPPORTED_PARAM"
    assert "STRIDED_SLICE" in str(error)


# --- TRANSPOSE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [2, 3, 4, 5])
def test_transpose_matches_tflm(rank):
    import tensorflow as tf

    rng = np.random.default_rng(5000 + rank)
    shape = tuple(int(d) for d in rng.integers(2, 5, size=rank))  # moving size-1 axes converts to RESHAPE
    perm = list(range(rank))
    while perm == sorted(perm):  # the identity converts to no op at all
        perm = [int(p) for p in rng.permutation(rank)]
    model = one_op_model(lambda x: tf.transpose(x, perm), [shape], rng, "TRANSPOSE", value_range=random_range(rng))
    assert_matches_tflm(model, rng)


# --- unsupported types -----------------------------------------------------------------------------


def float_model(fn, shapes) -> bytes:
    import tensorflow as tf

    function = tf.function(fn, input_signature=[tf.TensorSpec(s, tf.float32) for s in shapes])
    return tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function).convert()


def float_case(op: str):
    """(fn, input shapes) of a small float32 model of `op`."""
    import tensorflow as tf

    return {
        "CONCATENATION": (lambda a, b: tf.concat([a, b], axis=1), [(2, 3), (2, 2)]),
        "PAD": (lambda x: tf.pad(x, [[1, 0], [0, 2]]), [(2, 3)]),
        "MEAN": (lambda x: tf.reduce_mean(x, axis=[1]), [(2, 3)]),
        "STRIDED_SLICE": (lambda x: x[:, ::2], [(2, 5)]),
        "TRANSPOSE": (lambda x: tf.transpose(x, [1, 0]), [(2, 3)]),
    }[op]


@pytest.mark.parametrize("op", ["CONCATENATION", "PAD", "MEAN", "STRIDED_SLICE", "TRANSPOSE"])
def test_float_variant_is_refused_at_load_naming_the_op(op):
    fn, shapes = float_case(op)
    model = float_model(fn, shapes)
    assert [o.opcode for o in parse_tflite(model).main.operators] == [op]
    error = refusal(model)
    assert error.status == "MF_ERR_UNSUPPORTED_TYPE"
    assert op in str(error)
