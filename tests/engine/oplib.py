"""One-op int8 models for the engine's per-op tests, and the two runners compared on them.

Each case is converted by TensorFlow's own converter (full-integer
quantization from a seeded representative dataset, int8 inputs and outputs),
then run by the TFLM host interpreter (the oracle) and by our engine.

    model = convert(lambda x: tf.nn.relu(x), [(1, 4, 4, 3)], rng)
    assert_matches_tflm(model, rng)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import mcuforge  # noqa: F401  (Keras 2 environment before TensorFlow)

Shape = Sequence[int]


def convert(
    fn: Callable,
    input_shapes: Sequence[Shape],
    rng: np.random.Generator,
    value_range: tuple[float, float] | Sequence[tuple[float, float]] = (-1.0, 1.0),
    samples: int = 16,
    io_type: str = "int8",
    per_channel_dense: bool = False,
) -> bytes:
    """Convert `fn` (tensors in -> tensor out, TF ops or Keras layers) to an int8 .tflite.

    The representative data spans `value_range` on every input (or the i-th
    range on input i, given one (low, high) per input), which sets the input
    scales and zero points; vary it per case to vary the quantization.
    io_type "float32" keeps float inputs and outputs, so the model starts with
    QUANTIZE and ends with DEQUANTIZE; per_channel_dense quantizes
    FULLY_CONNECTED weights per output unit (the converter's default is per tensor).
    """
    import tensorflow as tf

    signature = [tf.TensorSpec(shape, tf.float32) for shape in input_shapes]
    function = tf.function(fn, input_signature=signature)
    concrete = function.get_concrete_function()
    ranges = [value_range] * len(input_shapes) if np.ndim(value_range) == 1 else list(value_range)
    data = [
        [rng.uniform(low, high, size=shape).astype(np.float32) for shape, (low, high) in zip(input_shapes, ranges)]
        for _ in range(samples)
    ]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense
    converter.inference_input_type = tf.as_dtype(io_type)
    converter.inference_output_type = tf.as_dtype(io_type)
    return converter.convert()


def convert_one_op(fn: Callable, input_shapes: Sequence[Shape], rng: np.random.Generator, op: str, **kwargs) -> bytes:
    """`convert`, checking the converter produced exactly one `op` (else the case would test something else)."""
    from mcuforge.deploy.tflite_model import parse_tflite

    model = convert(fn, input_shapes, rng, **kwargs)
    ops = [o.opcode for o in parse_tflite(model).main.operators]
    assert ops == [op], f"the converter made {ops}, not [{op}]"
    return model


def convert_keras(layer_fn: Callable, input_shape: Shape, rng: np.random.Generator, **kwargs) -> bytes:
    """Convert a Keras layer stack (`layer_fn(keras_input) -> output`), for ops TF spells as layers."""
    import tf_keras as keras

    inputs = keras.Input(batch_size=input_shape[0], shape=tuple(input_shape[1:]))
    model = keras.Model(inputs, layer_fn(inputs))
    return convert(lambda x: model(x), [input_shape], rng, **kwargs)


def edited(model: bytes, edit: Callable) -> bytes:
    """The model re-packed after `edit(schema.ModelT)` changed it in place: variants the converter never emits."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    edit(tree)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tflm_interpreter(model: bytes):
    """TFLM's host interpreter of `model`; its default arena (10x the model) is too small for weightless models."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=max(10 * len(model), 1 << 18))


def input_details(model: bytes) -> list[tuple[tuple[int, ...], np.dtype]]:
    """(shape, dtype) of each model input, read by the TFLM interpreter."""
    interpreter = tflm_interpreter(model)
    details = []
    index = 0
    while True:
        try:
            d = interpreter.get_input_details(index)
        except (IndexError, RuntimeError, ValueError):
            return details
        details.append((tuple(int(n) for n in d["shape"]), np.dtype(d["dtype"])))
        index += 1


def random_inputs(model: bytes, rng: np.random.Generator) -> list[np.ndarray]:
    """Uniform random values over each input's whole integer range (floats: within +-4)."""
    arrays = []
    for shape, dtype in input_details(model):
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.uniform(-4.0, 4.0, size=shape).astype(dtype))
            continue
        info = np.iinfo(dtype)
        arrays.append(rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype))
    return arrays


def run_tflm(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the TFLM host interpreter (reference kernels): the oracle."""
    interpreter = tflm_interpreter(model)
    for index, array in enumerate(inputs):
        interpreter.set_input(array, index)
    interpreter.invoke()
    outputs = []
    index = 0
    while True:
        try:
            outputs.append(np.array(interpreter.get_output(index), copy=True))
        except (IndexError, RuntimeError, ValueError):
            return outputs
        index += 1


def run_engine(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of our C engine (host build) on the same inputs."""
    from mcuforge.firmware.engine import Engine

    with Engine(model) as engine:
        return engine.invoke(list(inputs))


def run_prepared(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the model's prepared image (portable kernels) run by mf_prepared.c on the host."""
    from mcuforge.firmware.prepared import PreparedEngine, prepared_image

    with PreparedEngine.from_image(prepared_image(model, "portable"), "portable") as engine:
        return engine.invoke(list(inputs))


def assert_matches_tflm(model: bytes, rng: np.random.Generator, trials: int = 3) -> None:
    """Random inputs through TFLM, the engine and the engine's prepared image: every output equal
    (integers compared as int32, floats bit for bit)."""
    for _ in range(trials):
        inputs = random_inputs(model, rng)
        expected = run_tflm(model, inputs)
        for actual in (run_engine(model, inputs), run_prepared(model, inputs)):
            assert len(actual) == len(expected)
            for got, want in zip(actual, expected):
                assert got.shape == want.shape and got.dtype == want.dtype
                if np.issubdtype(want.dtype, np.floating):
                    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
                else:
                    np.testing.assert_array_equal(got.astype(np.int32), want.astype(np.int32))
