"""The Edge TPU compatibility check on small models that break Coral's rules one at a time.

Each model is built with TensorFlow's own converter (full-integer int8, fixed
shapes) from a tf.function, so the ops and tensors are what users get; the
oracle is Coral's published rule each one breaks and the documented single
segment: mapped up to the first op that cannot map, the CPU from there on.
"""

import numpy as np
import pytest

from conftest import SHARED
from mcuforge.deploy import edgetpu, edgetpu_compiler
from mcuforge.deploy.edgetpu import AFTER_SEGMENT, MAPPED, UNSUPPORTED
from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.errors import MCUForgeError

MODELS = SHARED / "models" / "tflite-micro"


def convert(fn, shapes, io="int8", seed=0):
    """int8 TFLite of tf.function `fn` for inputs of `shapes` (None: dynamic), calibrated on seeded noise."""
    import tensorflow as tf

    specs = [tf.TensorSpec(shape, tf.float32) for shape in shapes]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*specs)], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(seed)
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, [d or 4 for d in shape]).astype(np.float32) for shape in shapes] for _ in range(8)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8 if io == "int8" else tf.float32
    return converter.convert()


def check(data, min_runtime=edgetpu.DEFAULT_MIN_RUNTIME):
    return edgetpu.check_model(parse_tflite(data, "crafted.tflite"), min_runtime)


def statuses(report):
    return [(op.op, op.status) for op in report.ops]


def rules(op):
    return [p.rule for p in op.problems]


def _tf():
    import tensorflow as tf

    return tf


def _filters(shape, seed=1):
    return _tf().constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def test_a_compatible_model_maps_entirely():
    tf = _tf()
    w, dense = _filters((3, 3, 3, 4)), _filters((64, 5), seed=2)

    @tf.function
    def net(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))
        y = tf.nn.max_pool2d(y, 2, 2, "VALID")
        y = tf.reshape(y, [1, 64])
        return tf.nn.softmax(tf.matmul(y, dense))

    report = check(convert(net, [[1, 8, 8, 3]]))
    assert [op for op, _ in statuses(report)] == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert all(status == MAPPED for _, status in statuses(report))
    assert (report.segment_start, report.segment_end, report.breaking_op) == (0, None, None)
    assert report.fully_mapped and report.notes == []


def test_tensor_with_four_dimensions_larger_than_one_ends_the_segment():
    tf = _tf()

    @tf.function
    def net(x):
        return tf.reshape(x + 1.0, [2, 2, 4, 3])  # 4 dims > 1: only the innermost 3 may exceed 1

    report = check(convert(net, [[1, 4, 4, 3]]))
    assert statuses(report) == [("ADD", MAPPED), ("RESHAPE", UNSUPPORTED)]
    assert report.breaking_op.op == "RESHAPE" and report.segment_end == 1
    assert rules(report.breaking_op) == ["at most 3 dimensions larger than one"]
    assert "[2, 2, 4, 3]" in report.breaking_op.problems[0].detail


def test_dynamic_size_is_not_mapped():
    tf = _tf()
    w = _filters((3, 3, 3, 4))

    @tf.function
    def net(x):
        return tf.nn.conv2d(x, w, 1, "SAME")

    report = check(convert(net, [[1, None, 8, 3]]))
    (conv,) = report.ops
    assert conv.status == UNSUPPORTED and rules(conv) == ["sizes fixed at compile time"]
    assert report.segment_start is None


def test_weights_computed_at_run_time_are_not_mapped():
    tf = _tf()

    @tf.function
    def net(x, weights):
        return tf.linalg.matmul(x, weights, transpose_b=True)

    report = check(convert(net, [[1, 8], [4, 8]]))
    (fc,) = report.ops
    assert fc.op == "FULLY_CONNECTED" and fc.status == UNSUPPORTED
    assert rules(fc) == ["constant parameters"]


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_fused_activation_on_pooling_ends_the_segment(pool):
    tf = _tf()
    w1, w2 = _filters((1, 1, 3, 4)), _filters((1, 1, 4, 2), seed=3)
    pooling = tf.nn.avg_pool2d if pool == "avg" else tf.nn.max_pool2d

    @tf.function
    def net(x):
        y = tf.nn.conv2d(x, w1, 1, "VALID")
        y = tf.nn.relu(pooling(y, 2, 2, "VALID"))  # the converter fuses this ReLU into the pooling op
        return tf.nn.conv2d(y, w2, 1, "VALID")

    report = check(convert(net, [[1, 8, 8, 3]]))
    name = "AVERAGE_POOL_2D" if pool == "avg" else "MAX_POOL_2D"
    assert statuses(report) == [("CONV_2D", MAPPED), (name, UNSUPPORTED), ("CONV_2D", AFTER_SEGMENT)]
    assert rules(report.breaking_op) == ["no fused activation"] and "RELU" in report.breaking_op.problems[0].detail
    assert report.ops[2].problems == []  # supported, but after the segment: CPU anyway


def _with_fused_relu(data: bytes, op_index: int) -> bytes:
    """The model with a RELU fused into op `op_index` (TF's converter never fuses one into CONCATENATION)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    model.subgraphs[0].operators[op_index].builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_fused_activation_on_concatenation_is_not_mapped():
    tf = _tf()

    @tf.function
    def net(a, b):
        return tf.concat([a, b], -1)

    data = convert(net, [[1, 4, 4, 3], [1, 4, 4, 3]])
    assert statuses(check(data)) == [("CONCATENATION", MAPPED)]
    (concat,) = check(_with_fused_relu(data, 0)).ops
    assert concat.status == UNSUPPORTED and rules(concat) == ["no fused activation"]


@pytest.mark.parametrize(
    "constant, inputs, mapped",
    [("zeros", 2, True), ("ones", 2, False), ("zeros", 3, False)],
)
def test_concatenation_with_a_constant_only_as_zero_padding(constant, inputs, mapped):
    tf = _tf()
    fill = tf.zeros if constant == "zeros" else tf.ones

    @tf.function
    def net(a):
        parts = [a, fill([1, 4, 4, 2])] + [a] * (inputs - 2)
        return tf.concat(parts, -1)

    report = check(convert(net, [[1, 4, 4, 3]]))
    (concat,) = [op for op in report.ops if op.op == "CONCATENATION"]
    assert concat.on_edgetpu is mapped
    assert rules(concat) == ([] if mapped else ["concatenation with a constant"])


@pytest.mark.parametrize("axes, mapped", [([1, 2], True), ([2], True), ([3], False)])
def test_mean_reduces_along_x_and_y_only(axes, mapped):
    tf = _tf()

    @tf.function
    def net(x):
        return tf.reduce_mean(x, axis=axes, keepdims=True)

    (mean,) = check(convert(net, [[1, 4, 4, 3]])).ops
    assert mean.op == "MEAN" and mean.on_edgetpu is mapped
    assert rules(mean) == ([] if mapped else ["MEAN along x/y only"])


def test_mean_needs_runtime_12():
    tf = _tf()

    @tf.function
    def net(x):
        return tf.reduce_mean(x, axis=[1, 2], keepdims=True)

    data = convert(net, [[1, 4, 4, 3]])
    (mean,) = check(data, min_runtime=11).ops
    assert rules(mean) == ["runtime version"] and "--min-runtime-version 12" in mean.problems[0].fix
    assert check(data, min_runtime=12).fully_mapped


@pytest.mark.parametrize("paddings, mapped", [([[0, 0], [1, 1], [2, 2], [0, 0]], True), ([[0, 0], [0, 0], [0, 0], [0, 2]], False)])
def test_pad_along_x_and_y_only(paddings, mapped):
    tf = _tf()

    @tf.function
    def net(x):
        return tf.pad(x, paddings)

    (pad,) = check(convert(net, [[1, 4, 4, 3]])).ops
    assert pad.op == "PAD" and pad.on_edgetpu is mapped


def test_softmax_needs_a_one_dimensional_input():
    tf = _tf()

    @tf.function
    def net(x):
        return tf.nn.softmax(x)

    (softmax,) = check(convert(net, [[1, 4, 8]])).ops
    assert rules(softmax) == ["softmax on a 1-D input of at most 16,000 elements"]
    assert check(convert(net, [[1, 32]])).fully_mapped


def test_unsupported_op_moves_the_rest_to_the_cpu():
    tf = _tf()
    w1, w2 = _filters((1, 1, 3, 4)), _filters((1, 1, 4, 2), seed=3)

    @tf.function
    def net(x):
        y = tf.nn.conv2d(x, w1, 1, "VALID")
        return tf.nn.conv2d(tf.exp(y), w2, 1, "VALID")

    report = check(convert(net, [[1, 4, 4, 3]]))
    assert statuses(report) == [("CONV_2D", MAPPED), ("EXP", UNSUPPORTED), ("CONV_2D", AFTER_SEGMENT)]
    assert (report.segment_start, report.segment_end) == (0, 1)
    assert rules(report.breaking_op) == ["supported operation"]
    text = report.text()
    assert "it ends at op 1 (EXP" in text and "fix: replace EXP" in text


def test_float_io_leaves_the_quantize_and_dequantize_on_the_cpu():
    tf = _tf()
    w = _filters((1, 1, 3, 4))

    @tf.function
    def net(x):
        return tf.nn.conv2d(x, w, 1, "VALID")

    report = check(convert(net, [[1, 4, 4, 3]], io="float32"))
    assert statuses(report) == [("QUANTIZE", UNSUPPORTED), ("CONV_2D", MAPPED), ("DEQUANTIZE", UNSUPPORTED)]
    assert (report.segment_start, report.segment_end) == (1, 2)
    assert rules(report.ops[0]) == ["operation on an unsupported data type"]


def test_the_segment_starts_at_the_first_mappable_op():
    tf = _tf()
    w = _filters((1, 1, 3, 4))

    @tf.function
    def net(x):
        return tf.nn.relu(tf.nn.conv2d(tf.exp(x), w, 1, "VALID")) * 0.5

    report = check(convert(net, [[1, 4, 4, 3]]))
    assert statuses(report) == [("EXP", UNSUPPORTED), ("CONV_2D", MAPPED), ("MUL", MAPPED)]
    assert (report.segment_start, report.segment_end) == (1, None)


@pytest.mark.parametrize(
    "path, fully_mapped",
    [
        ("hello_world/hello_world_int8.tflite", True),
        ("person_detection/person_detect.tflite", True),
        ("micro_speech/micro_speech_quantized.tflite", True),
        ("magic_wand/magic_wand.tflite", False),
    ],
)
def test_upstream_models(path, fully_mapped):
    report = edgetpu.check_file(MODELS / path)
    assert report.fully_mapped is fully_mapped
    if not fully_mapped:  # the float model: every op breaks the 8-bit rule, none maps
        assert report.segment_start is None
        assert all(rules(op) == ["8-bit quantized tensors"] for op in report.ops)


def test_dynamic_batch_is_a_note_and_static_batch_fixes_it():
    from tflite_micro.python.tflite_micro import runtime

    data = (MODELS / "hello_world" / "hello_world_int8.tflite").read_bytes()
    assert [n.rule for n in check(data).notes] == ["batch 1"]
    fixed = edgetpu_compiler.static_batch(data)
    assert check(fixed).notes == []
    assert parse_tflite(fixed).main.input_tensors[0].shape_signature == (1, 1)
    interpreter = runtime.Interpreter.from_bytes(fixed)
    interpreter.set_input(np.array([[-64]], dtype=np.int8), 0)  # x = pi/2 (MANIFEST.md)
    interpreter.invoke()
    assert int(interpreter.get_output(0)[0, 0]) == 126


def test_check_rejects_a_file_that_is_not_a_model(tmp_path):
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(MCUForgeError, match="bogus.tflite is not a TFLite model"):
        edgetpu.check_file(bogus)


def test_fully_connected_output_must_be_one_dimensional():
    tf = _tf()
    dense = _filters((8, 5))

    @tf.function
    def net(x):
        return tf.matmul(x, dense)  # over a sequence: output [1, 4, 5]

    (fc,) = check(convert(net, [[1, 4, 8]])).ops
    assert fc.op == "FULLY_CONNECTED" and rules(fc) == ["fully-connected output is one-dimensional"]


def test_strided_slice_needs_strides_of_one():
    tf = _tf()

    @tf.function
    def net(x):
        return x[:, ::2, :, :] * 1.0

    (strided,) = [op for op in check(convert(net, [[1, 8, 8, 3]])).ops if op.op == "STRIDED_SLICE"]
    assert rules(strided) == ["strided slice strides of 1"]

    @tf.function
    def unit(x):
        return x[:, 1:5, :, :] * 1.0

    assert all(op.on_edgetpu for op in check(convert(unit, [[1, 8, 8, 3]])).ops)


def test_convolution_dilation_must_match_in_x_and_y():
    tf = _tf()
    w = _filters((3, 3, 3, 4))

    @tf.function
    def net(x):
        return tf.nn.conv2d(x, w, 1, "VALID", dilations=[1, 1, 2, 1])

    (conv,) = [op for op in check(convert(net, [[1, 12, 12, 3]])).ops if op.op == "CONV_2D"]
    assert rules(conv) == ["same dilation in x and y"]


def _with_permutation(data: bytes, perm: list[int]) -> bytes:
    """The model with its TRANSPOSE's constant permutation replaced (TF folds a batch-1 transpose into a RESHAPE)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    (op,) = [o for o in graph.operators if model.operatorCodes[o.opcodeIndex].builtinCode == schema.BuiltinOperator.TRANSPOSE]
    model.buffers[graph.tensors[op.inputs[1]].buffer].data = np.frombuffer(np.array(perm, dtype=np.int32).tobytes(), dtype=np.uint8)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_transpose_must_not_move_the_batch_axis():
    tf = _tf()

    @tf.function
    def net(x):
        return tf.transpose(x, [0, 2, 1, 3]) * 1.0

    data = convert(net, [[1, 4, 6, 3]])
    (transpose,) = [op for op in check(data).ops if op.op == "TRANSPOSE"]
    assert transpose.on_edgetpu and transpose.problems == []
    (moved,) = [op for op in check(_with_permutation(data, [1, 0, 2, 3])).ops if op.op == "TRANSPOSE"]
    assert rules(moved) == ["TRANSPOSE not along batch"]
