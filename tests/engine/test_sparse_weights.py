"""Sparse filters in prepared images (kernels/mf_sparse.h): CONV_2D and FULLY_CONNECTED whose int8
weights are 2:4 or unstructured sparse run from their encoding, bit for bit as TFLM on the model.

Each case is a one-op model made by TensorFlow's converter from random shapes
and random weights with a random 2:4 mask (two of every four along the input
channels kept) or an unstructured one (about 80 % zeros, filters large enough that a
bitmap halves their bytes). The image must hold
the encoding the record names, without the dense filter (the flash it saves),
and both kernel sets' images must equal TFLM on random inputs; a flipped bit of
the encoding must make the image fail to open (the checksum covers it).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from oplib import convert_one_op, edited, random_inputs, run_tflm

from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.firmware.engine import EngineError, fuzz
from mcuforge.firmware.prepared import PreparedEngine, PreparedImage, prepared_image

# mf_prepared.h header words and descriptor sizes; mf_affine_data's `weights` field; mf_kernel.h formats.
IMAGE_OPS, IMAGE_TENSORS, IMAGE_DATA = 9, 10, 12
OP_WORDS, TENSOR_WORDS = 9, 12
RECORD_WEIGHTS_FIELD, RECORD_WEIGHTS_AT_FIELD = 24, 28
SPARSE_2_4, BITMAP, SPARSE_2_4_INT4 = 2, 3, 4
REPO = Path(__file__).resolve().parents[2]


def word(image: bytes, index: int) -> int:
    return struct.unpack_from("<I", image, 4 * index)[0]


def first_op_weights_format(image: bytes) -> int:
    """The weights format in the first op's record."""
    record = word(image, word(image, IMAGE_OPS) // 4 + 3)
    return struct.unpack_from("<h", image, word(image, IMAGE_DATA) + record + RECORD_WEIGHTS_FIELD)[0]


def tensor_stored(image: bytes, tensor: int) -> bool:
    """Whether the image keeps tensor `tensor`'s bytes (its descriptor's place is not NONE)."""
    return word(image, word(image, IMAGE_TENSORS) // 4 + tensor * TENSOR_WORDS + 10) & 0xFF != 0


def sparse(rng: np.random.Generator, weights: np.ndarray, structure: str, keep: float = 0.2) -> np.ndarray:
    """`weights` (input channels on axis -2, outputs on -1, as TF stores them) with a random mask:
    2:4 keeps two of each four consecutive input channels, unstructured a fraction `keep` of them."""
    moved = np.moveaxis(weights, -1, 0)  # outputs first, input channels last: TFLite's order
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // 4, 4)
    if structure == "2:4":
        mask = np.argsort(rng.random(groups.shape), axis=-1) < 2
    else:
        mask = rng.random(groups.shape) < keep
        mask.reshape(-1, 4)[0, :3] = True  # three in one group: never 2:4 by chance
    return np.moveaxis((groups * mask).reshape(moved.shape), 0, -1).astype(np.float32)


def case(seed: int):
    """A one-op model with sparse weights, its filter tensor index and its filter bytes."""
    import tensorflow as tf

    rng = np.random.default_rng(1800 + seed)
    structure = ["2:4", "unstructured"][seed % 2]
    value_range = (float(-rng.uniform(0.5, 4.0)), float(rng.uniform(0.5, 4.0)))
    if seed % 3 == 2:
        depth, units, batch = 32 * int(rng.integers(1, 3)), int(rng.integers(2, 10)), int(rng.integers(1, 7))
        weights = tf.constant(sparse(rng, rng.normal(0, 0.5, size=(depth, units)), structure))
        bias = tf.constant(rng.normal(0, 0.5, size=units).astype(np.float32))
        model = convert_one_op(lambda x: tf.matmul(x, weights) + bias, [(batch, depth)], rng, "FULLY_CONNECTED",
                               value_range=value_range)
        size = depth * units
    else:
        k = 1 if seed % 3 == 0 else int(rng.integers(2, 4))
        cin, cout = (4 if structure == "2:4" else 32 if k == 1 else 16) * int(rng.integers(1, 4)), int(rng.integers(2, 9))
        h, w = int(rng.integers(k + 1, 9)), int(rng.integers(k + 1, 9))
        stride, dilation = (int(rng.integers(1, 3)), 1) if seed % 4 < 2 else (1, int(rng.integers(1, 3)))
        padding = ["SAME", "VALID"][seed % 5 == 0]
        filters = tf.constant(sparse(rng, rng.normal(0, 0.5, size=(k, k, cin, cout)), structure))
        bias = tf.constant(rng.normal(0, 0.5, size=cout).astype(np.float32))
        fn = lambda x: tf.nn.relu(tf.nn.conv2d(x, filters, stride, padding, dilations=dilation) + bias)  # noqa: E731
        model = convert_one_op(fn, [(1 + seed % 2, h, w, cin)], rng, "CONV_2D", value_range=value_range)
        size = k * k * cin * cout
    return rng, structure, model, size


@pytest.mark.parametrize("seed", [*range(6), 16])  # 16: a 2:4 window with dilation 1 (runs of taps)
def test_sparse_filters_run_from_their_encoding_as_tflm(seed):
    rng, structure, model, filter_bytes = case(seed)
    graph = parse_tflite(model).main
    filter_tensor = graph.operators[0].inputs[1]
    groups = np.frombuffer(graph.tensors[filter_tensor].data, np.int8).reshape(-1, 4)
    two_four = bool(((groups != 0).sum(axis=1) <= 2).all())
    assert two_four == (structure == "2:4")
    channels = graph.tensors[filter_tensor].shape[0]
    per_channel = groups.size // channels
    bitmap_bytes = channels * (4 + -(-per_channel // 8)) + int(np.count_nonzero(groups))
    assert two_four or 2 * bitmap_bytes <= groups.size  # the case's shapes and keep make a bitmap pay
    for kernels in ("portable", "dsp"):
        image = prepared_image(model, kernels).data
        assert first_op_weights_format(image) == (SPARSE_2_4 if two_four else BITMAP)
        assert not tensor_stored(image, filter_tensor)
        with PreparedEngine.from_image(prepared_image(model, kernels), kernels) as engine:
            for _ in range(2):
                inputs = random_inputs(model, rng)
                np.testing.assert_array_equal(engine.invoke(inputs)[0].astype(np.int32),
                                              run_tflm(model, inputs)[0].astype(np.int32))
    encoded = word(image, IMAGE_DATA) + word(image, word(image, IMAGE_OPS) // 4 + 3)
    encoded += struct.unpack_from("<i", image, encoded + RECORD_WEIGHTS_AT_FIELD)[0]
    corrupt = bytearray(image)
    corrupt[encoded] ^= 0x10  # a stored weight or position: the checksum covers the encoding
    with pytest.raises(EngineError, match="MF_ERR_BAD_MODEL"):
        PreparedEngine.from_image(PreparedImage(bytes(corrupt), 0), "dsp")
    if two_four:  # two values and two 2-bit positions per group of four: 5/8 of the bytes
        dense = prepared_image(with_zeros_filled(model, filter_tensor), "dsp").data
        assert len(dense) - len(image) >= 3 * filter_bytes // 8 - 16


def assert_dsp_two_four_equals_tflm(model: bytes, rng: np.random.Generator) -> None:
    """The DSP image of a one-op model holds its filter in 2:4 and gives TFLM's outputs on random inputs."""
    image = prepared_image(model, "dsp")
    assert first_op_weights_format(image.data) == SPARSE_2_4
    with PreparedEngine.from_image(image, "dsp") as engine:
        for _ in range(3):
            inputs = random_inputs(model, rng)
            np.testing.assert_array_equal(engine.invoke(inputs)[0].astype(np.int32),
                                          run_tflm(model, inputs)[0].astype(np.int32))


@pytest.mark.parametrize("seed", range(3))
def test_dsp_pointwise_two_four_equals_tflm(seed):
    """The DSP 2:4 1x1 loop (kernels/dsp/mfd_sparse24.h: four pixels a pass, two groups a positions byte):
    pixel counts that leave one to three pixels over, input depths with a lone last group (4 mod 8),
    strides and batches, against TFLM."""
    import tensorflow as tf

    rng = np.random.default_rng(1850 + seed)
    cin, cout = 4 * int(rng.integers(1, 8)), int(rng.integers(1, 12))
    h, w, stride, batch = int(rng.integers(1, 6)), int(rng.integers(1, 8)), int(rng.integers(1, 3)), 1 + seed % 2
    filters = tf.constant(sparse(rng, rng.normal(0, 0.5, size=(1, 1, cin, cout)), "2:4"))
    bias = tf.constant(rng.normal(0, 0.5, size=cout).astype(np.float32))
    fn = lambda x: tf.nn.conv2d(x, filters, stride, "VALID") + bias  # noqa: E731
    model = convert_one_op(fn, [(batch, h, w, cin)], rng, "CONV_2D", value_range=(-3.0, 2.0))
    assert_dsp_two_four_equals_tflm(model, rng)


@pytest.mark.parametrize("kernel, cin, stride, padding", [((10, 4), 1, 2, "SAME"), ((2, 2), 3, 1, "VALID")])
def test_two_four_along_windows_equals_tflm(kernel, cin, stride, padding):
    """2:4 groups along each output channel's whole window ([f_h][f_w][f_c] flattened), as on a first
    convolution with one input channel, which groups along the input channels cannot thin: both kernel
    sets gather each pixel's window (the input zero point in the padding) and run the 1x1 loops, against
    TFLM; the image holds 2:4 in place of the dense filter."""
    import tensorflow as tf

    rng = np.random.default_rng(1880 + cin + kernel[0])
    cout = int(rng.integers(2, 11))
    weights = rng.normal(0, 0.5, size=(*kernel, cin, cout))
    rows = np.moveaxis(weights, -1, 0).reshape(cout, -1, 4)  # TFLite's [out][h][w][in], in groups of four
    rows = rows * (np.argsort(rng.random(rows.shape), axis=-1) < 2)
    filters = tf.constant(np.moveaxis(rows.reshape(cout, *kernel, cin), 0, -1).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=cout).astype(np.float32))
    fn = lambda x: tf.nn.conv2d(x, filters, stride, padding) + bias  # noqa: E731
    model = convert_one_op(fn, [(1 + cin % 2, int(rng.integers(6, 12)), int(rng.integers(5, 9)), cin)], rng, "CONV_2D",
                           value_range=(-2.5, 3.0))
    filter_tensor = parse_tflite(model).main.operators[0].inputs[1]
    for kernels in ("portable", "dsp"):
        image = prepared_image(model, kernels)
        assert first_op_weights_format(image.data) == SPARSE_2_4
        assert not tensor_stored(image.data, filter_tensor)
        with PreparedEngine.from_image(image, kernels) as engine:
            for _ in range(2):
                inputs = random_inputs(model, rng)
                np.testing.assert_array_equal(engine.invoke(inputs)[0].astype(np.int32),
                                              run_tflm(model, inputs)[0].astype(np.int32))


def depthwise_two_four(rng: np.random.Generator, kernel: int, cin: int, multiplier: int, width: int,
                       dilation: int) -> bytes:
    """A one-op DEPTHWISE_CONV_2D model (7 x width input, SAME) whose filter keeps two of each four
    consecutive output channels at each tap."""
    import tensorflow as tf

    channels = cin * multiplier
    taps = rng.normal(0, 0.5, size=(kernel * kernel * channels // 4, 4))
    taps *= np.argsort(rng.random(taps.shape), axis=-1) < 2  # two of each four kept
    filters = tf.constant(taps.reshape(kernel, kernel, cin, multiplier).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.5, size=channels).astype(np.float32))
    fn = lambda x: tf.nn.relu(  # noqa: E731
        tf.nn.depthwise_conv2d(x, filters, [1, 1, 1, 1], "SAME", dilations=[dilation, dilation]) + bias)
    return convert_one_op(fn, [(1, 7, width, cin)], rng, "DEPTHWISE_CONV_2D", value_range=(-2.0, 3.0))


# mf_affine.h: the DSP depthwise loops a prepared image's kernel key names (its variant's bits 4 on), 0 the portable one
DW_PORTABLE, DW_CHANNELS, DW_ONE_INPUT_CHANNEL, DW_3X3, DW_3X3_NHWC = 0, 1, 2, 3, 4
EVAL_SPARSE = 3  # mf_kernel.h: the variant of an encoded filter


@pytest.mark.parametrize("loop, kernel, cin, multiplier, width, dilation", [
    (DW_3X3_NHWC, 3, 8, 1, 5, 1), (DW_3X3, 3, 4, 1, 9, 1), (DW_CHANNELS, 3, 12, 1, 7, 2),
    (DW_ONE_INPUT_CHANNEL, 2, 1, 8, 6, 1), (DW_PORTABLE, 3, 2, 2, 6, 2)])
def test_depthwise_two_four_filters_equal_tflm(loop, kernel, cin, multiplier, width, dilation):
    """A DEPTHWISE_CONV_2D filter 2:4 along its channels (each four consecutive of [h][w][C]) is stored in
    2:4 without the dense tensor, and each DSP loop (and the portable one) that runs it expanded gives
    TFLM's outputs; the image is 3/8 of the filter smaller than its dense twin's."""
    rng = np.random.default_rng(1870 + loop)
    model = depthwise_two_four(rng, kernel, cin, multiplier, width, dilation)
    channels = cin * multiplier
    filter_tensor = parse_tflite(model).main.operators[0].inputs[1]
    for kernels in ("portable", "dsp"):
        image = prepared_image(model, kernels)
        assert first_op_weights_format(image.data) == SPARSE_2_4 and not tensor_stored(image.data, filter_tensor)
        key = word(image.data, word(image.data, IMAGE_OPS) // 4)
        assert key >> 20 & 0xF == EVAL_SPARSE and key >> 24 == (loop if kernels == "dsp" else DW_PORTABLE)
        with PreparedEngine.from_image(image, kernels) as engine:
            for _ in range(2):
                inputs = random_inputs(model, rng)
                np.testing.assert_array_equal(engine.invoke(inputs)[0], run_tflm(model, inputs)[0])
    dense = prepared_image(with_zeros_filled(model, filter_tensor), "dsp").data
    assert len(dense) - len(image.data) >= 3 * kernel * kernel * channels // 8 - 8
    sys.path.insert(0, str(REPO / "bench"))
    from image_bytes import breakdown

    sections = breakdown(image.data)["sections"]  # bench/image_bytes.py reads the depthwise form too
    weights = kernel * kernel * channels
    assert sections["2:4 values"] == weights // 2 and sections["2:4 positions"] == -(-weights // 8)
    assert "dense filter" not in sections and sections["bias"] == 4 * channels


def with_int4_two_four_filter(model: bytes, rng: np.random.Generator, sparse_filter: bool) -> bytes:
    """`model` with its op's filter replaced by random nonzero INT4 values, packed, where `sparse_filter`
    with two of every four of each output channel's flattened window zeroed at random."""
    from test_ops_int4 import INT4, pack_int4

    def edit(tree):
        graph = tree.subgraphs[0]
        tensor = graph.tensors[graph.operators[0].inputs[1]]
        values = rng.choice([*range(-8, 0), *range(1, 8)], size=(int(np.prod(tensor.shape)) // 4, 4))
        if sparse_filter:
            values = values * (np.argsort(rng.random(values.shape), axis=-1) < 2)
        tree.buffers[tensor.buffer].data = np.frombuffer(pack_int4(values), np.uint8)
        tensor.type = INT4

    return edited(model, edit)


@pytest.mark.parametrize("kernel, cin", [(1, 8), (3, 4)])
def test_int4_two_four_filters_equal_tflm(kernel, cin):
    """INT4 conv filters (4-bit QAT's) that are 2:4 along each output channel's window: both kernel sets'
    images store a byte of two 4-bit values and a positions nibble per group (3/4 of the packed bytes) and
    give TFLM's outputs (TFLM unpacks the INT4 filter itself)."""
    import tensorflow as tf

    rng = np.random.default_rng(1895 + kernel)
    cout = int(rng.integers(2, 9))
    filters = tf.constant(rng.normal(0, 0.5, size=(kernel, kernel, cin, cout)).astype(np.float32))
    fn = lambda x: tf.nn.relu(tf.nn.conv2d(x, filters, 1, "SAME") + 0.25)  # noqa: E731
    model = convert_one_op(fn, [(1, int(rng.integers(3, 7)), int(rng.integers(3, 7)), cin)], rng, "CONV_2D",
                           value_range=(-2.0, 2.5))
    sparse_model = with_int4_two_four_filter(model, rng, True)
    filter_tensor = parse_tflite(sparse_model).main.operators[0].inputs[1]
    for kernels in ("portable", "dsp"):
        image = prepared_image(sparse_model, kernels)
        assert first_op_weights_format(image.data) == SPARSE_2_4_INT4
        assert not tensor_stored(image.data, filter_tensor)
        dense = prepared_image(with_int4_two_four_filter(model, rng, False), kernels).data
        assert len(dense) - len(image.data) >= kernel * kernel * cin * cout // 8 - 16
        with PreparedEngine.from_image(image, kernels) as engine:
            for _ in range(2):
                inputs = random_inputs(sparse_model, rng)
                np.testing.assert_array_equal(engine.invoke(inputs)[0].astype(np.int32),
                                              run_tflm(sparse_model, inputs)[0].astype(np.int32))


@pytest.mark.parametrize("depth, batch", [(12, 1), (36, 3)])
def test_dsp_fully_connected_two_four_equals_tflm(depth, batch):
    """The DSP 2:4 fully connected loop (mfd_sparse24_row: a row at a time, inputs picked by position) with a
    lone last group (depth 4 mod 8) and several batches, against TFLM."""
    import tensorflow as tf

    rng = np.random.default_rng(1870 + depth)
    units = int(rng.integers(2, 9))
    weights = tf.constant(sparse(rng, rng.normal(0, 0.5, size=(depth, units)), "2:4"))
    bias = tf.constant(rng.normal(0, 0.5, size=units).astype(np.float32))
    model = convert_one_op(lambda x: tf.matmul(x, weights) + bias, [(batch, depth)], rng, "FULLY_CONNECTED",
                           value_range=(-2.0, 3.0))
    assert_dsp_two_four_equals_tflm(model, rng)


def with_zeros_filled(model: bytes, tensor: int) -> bytes:
    """The model with every zero weight of `tensor` set to 1: the same op, a dense filter."""

    def fill(tree) -> None:
        buffer = tree.buffers[tree.subgraphs[0].tensors[tensor].buffer]
        buffer.data = np.where(np.asarray(buffer.data) == 0, 1, np.asarray(buffer.data)).astype(np.uint8)

    return edited(model, fill)


def test_image_bytes_breakdown_accounts_for_every_byte():
    """bench/image_bytes.py splits a 2:4 conv's image and its dense twin's into sections that add up to the
    image, with the filter, bias and requantization bytes the .tflite's shapes call for."""
    sys.path.insert(0, str(REPO / "bench"))
    from image_bytes import breakdown

    _, _, model, filter_bytes = case(0)  # a 2:4 1x1 convolution
    graph = parse_tflite(model).main
    filter_tensor = graph.operators[0].inputs[1]
    channels = graph.tensors[filter_tensor].shape[0]
    k = filter_bytes // channels
    sparse_image = prepared_image(model, "dsp").data
    dense_image = prepared_image(with_zeros_filled(model, filter_tensor), "dsp").data
    sparse, dense = breakdown(sparse_image)["sections"], breakdown(dense_image)["sections"]
    assert sum(sparse.values()) == len(sparse_image) and sum(dense.values()) == len(dense_image)
    assert dense["dense filter"] == filter_bytes and dense["bias"] == 4 * channels
    assert sparse["2:4 values"] == channels * k // 2 and sparse["2:4 positions"] == channels * -(-k // 8)
    assert sparse["folded biases"] == 4 * channels and "dense filter" not in sparse and "bias" not in sparse
    assert sparse["requantization"] == dense["requantization"] == 8 * channels  # per-channel mf_requant
    assert sparse["tensor descriptors"] == 12 * 4 * len(graph.tensors)


@pytest.mark.slow  # the sanitizer build
def test_mutated_sparse_models_written_as_images_do_not_crash(tmp_path):
    """Mutants of sparse one-op models go through the image writer (the encoders) and their images run
    (the sparse kernels) under ASan/UBSan."""
    seeds = []
    for seed in (0, 1, 5, 16):  # 2:4 pointwise conv, bitmap conv, bitmap fully connected, 2:4 window (gathered)
        seeds.append(tmp_path / f"sparse_{seed}.tflite")
        seeds[-1].write_bytes(case(seed)[2])
    seeds.append(tmp_path / "sparse_int4.tflite")  # INT4 2:4 (unpacked by the DSP loop)
    seeds[-1].write_bytes(with_int4_two_four_filter(case(16)[2], np.random.default_rng(18), True))
    seeds.append(tmp_path / "sparse_depthwise.tflite")  # 2:4 depthwise (expanded for the dense loops)
    seeds[-1].write_bytes(depthwise_two_four(np.random.default_rng(18), 3, 8, 1, 5, 1))
    result = fuzz(seeds, seconds=10, seed=18)
    assert result.iterations > 100 and result.loaded > 0


def small_pruned_model(rng: np.random.Generator) -> bytes:
    """A small CNN (5x5 conv, 1x1 conv, dense) whose 1x1 conv and dense layers hold 2:4 weights and whose
    first conv has one input channel, so 90 % of its weights zeroed at random: a bitmap."""
    import tf_keras as keras

    def layers(x):
        first = keras.layers.Conv2D(8, 5, padding="same", activation="relu")
        pointwise = keras.layers.Conv2D(16, 1, activation="relu")
        dense = keras.layers.Dense(10)
        y = dense(keras.layers.Flatten()(pointwise(first(x))))
        for layer in (first, pointwise, dense):
            kernel, bias = layer.get_weights()
            mask = sparse(rng, np.ones_like(kernel), "2:4") if kernel.shape[-2] % 4 == 0 else rng.random(kernel.shape) < 0.1
            layer.set_weights([kernel * mask, bias])
        return y

    from oplib import convert_keras

    return convert_keras(layers, (1, 6, 6, 1), rng)


def test_dsp_pointwise_two_four_clamped_equals_tflm():
    """The DSP 2:4 1x1 loop with an activation range narrower than int8 (a fused ReLU6 whose output zero
    point is edited to 0, so the range starts at 0), where passes of four do not store byte by byte with the
    saturation as the clamp (dsp/conv_sparse.c: conv_sparse24_constants) but requantize and clamp word by
    word, against TFLM."""
    import tensorflow as tf

    rng = np.random.default_rng(1860)
    cin, cout = 16, 9
    filters = tf.constant(sparse(rng, rng.normal(0, 0.5, size=(1, 1, cin, cout)), "2:4"))
    bias = tf.constant(rng.normal(0, 0.5, size=cout).astype(np.float32))
    fn = lambda x: tf.nn.relu6(tf.nn.conv2d(x, filters, 1, "VALID") + bias)  # noqa: E731
    model = convert_one_op(fn, [(1, 3, 4, cin)], rng, "CONV_2D", value_range=(-3.0, 2.0))

    def zero_point_zero(tree):
        graph = tree.subgraphs[0]
        graph.tensors[graph.outputs[0]].quantization.zeroPoint = [0]

    model = edited(model, zero_point_zero)
    outputs = run_tflm(model, random_inputs(model, rng))[0]
    assert outputs.min() == 0 and outputs.max() > 0  # clamped at 0: the range is not int8's whole
    assert_dsp_two_four_equals_tflm(model, rng)


@pytest.mark.slow  # one firmware build and QEMU run
def test_small_pruned_model_on_qemu_equals_tflm(tmp_path):
    """The prepared image of a pruned model (2:4 and bitmap layers) built into qemu-m4 firmware: every
    output equal to TFLM's on the model, and the image smaller than the same model's with dense weights."""
    from mcuforge.firmware import build, qemu

    rng = np.random.default_rng(18)
    model = small_pruned_model(rng)
    graph = parse_tflite(model).main
    formats = []
    for kernels in ("dsp", "portable"):
        image = prepared_image(model, kernels).data
        dense = model
        for op in graph.operators:
            dense = with_zeros_filled(dense, op.inputs[1])
        assert len(image) < len(prepared_image(dense, kernels).data)
        stored = [tensor_stored(image, op.inputs[1]) for op in graph.operators if op.opcode != "RESHAPE"]
        formats.append(stored)
    assert formats[0] == [False, False, False] == formats[1]  # every filter left the image for its encoding
    path = tmp_path / "pruned.tflite"
    path.write_bytes(model)
    vectors = np.random.default_rng(1).integers(-128, 128, size=(3, 1, 6, 6, 1)).astype(np.int8)
    result = qemu.run_qemu(build.build_image(path, "qemu-m4", out_dir=tmp_path, inputs=vectors))
    assert len(result.outputs) == len(vectors)
    for got, vector in zip(result.outputs, vectors):
        np.testing.assert_array_equal(got[0].reshape(-1).astype(np.int32),
                                      run_tflm(model, [vector])[0].reshape(-1).astype(np.int32))


@pytest.mark.slow  # one firmware build and QEMU run
def test_dsp_pointwise_asm_loops_on_qemu_equal_tflm(tmp_path):
    """The DSP 2:4 asm loops (kernels/dsp/mfd_sparse24.h) run only on the target: a first convolution
    (10 x 4 window of one input channel, 2:4 along it: k = 40, four groups a turn then a last pair; stride 2,
    windows inside the input read in place, the others gathered with the padding), then two pointwise
    convolutions, 48 input channels (four groups a turn) then 64 (eight a turn) with 70 outputs (a block of
    16 channels' sums and one of 6, not a multiple of four; each convolution's activation range all of int8,
    so passes of four store through the asm store loop), on 5 x 5 pixels (six passes of four and a lone
    pixel), built into qemu-m4 firmware: every output equal to TFLM's."""
    import tf_keras as keras
    from oplib import convert_keras

    from mcuforge.firmware import build, qemu

    rng = np.random.default_rng(1890)

    def layers(x):
        first = keras.layers.Conv2D(48, (10, 4), strides=2, padding="same", activation="relu")
        convs = [keras.layers.Conv2D(64, 1, activation="relu"), keras.layers.Conv2D(70, 1)]
        y = convs[1](convs[0](first(x)))
        kernel, bias = first.get_weights()
        rows = np.moveaxis(rng.normal(0, 0.5, size=kernel.shape), -1, 0).reshape(48, 10, 4)  # [out][h][w x in]
        first.set_weights([np.moveaxis(rows * (np.argsort(rng.random(rows.shape), axis=-1) < 2), 0, -1)
                           .reshape(kernel.shape), bias])
        for conv in convs:
            kernel, bias = conv.get_weights()
            conv.set_weights([sparse(rng, rng.normal(0, 0.5, size=kernel.shape), "2:4"), bias])
        return y

    model = convert_keras(layers, (1, 14, 10, 1), rng)
    image = prepared_image(model, "dsp").data
    graph = parse_tflite(model).main
    assert not any(tensor_stored(image, op.inputs[1]) for op in graph.operators)  # every filter in 2:4
    path = tmp_path / "pointwise.tflite"
    path.write_bytes(model)
    vectors = rng.integers(-128, 128, size=(2, 1, 14, 10, 1)).astype(np.int8)
    result = qemu.run_qemu(build.build_image(path, "qemu-m4", out_dir=tmp_path, inputs=vectors))
    assert len(result.outputs) == len(vectors)
    for got, vector in zip(result.outputs, vectors):
        np.testing.assert_array_equal(got[0].reshape(-1).astype(np.int32),
                                      run_tflm(model, [vector])[0].reshape(-1).astype(np.int32))
