"""4-bit weights end to end: quantize's weight_bits through TF's converter to packed INT4, then TFLM against our engine.

The digits tiny_cnn, trained briefly and quantized with weight_bits 4 (its
logits layer also at 4 bits, so both CONV_2D and FULLY_CONNECTED carry INT4),
is converted by TF's converter; the TFLM host interpreter is the oracle for
the engine on the host (interpreter and prepared image) and under QEMU.
"""

from __future__ import annotations

import numpy as np
import pytest

from mcuforge.compress.common import Context, TrainingOptions, fine_tune
from mcuforge.errors import MCUForgeError
from mcuforge.spec import load_spec, parse_spec
from test_compress import DIGITS, _digits_spec, _tflm


@pytest.fixture(scope="module")
def context():
    from mcuforge.train.trainer import load_dataset

    spec = load_spec(DIGITS)
    return Context(spec, load_dataset(spec))


@pytest.fixture(scope="module")
def int4_qat(context):
    """The digits tiny_cnn (2 epochs), 4-bit QAT for 1 epoch with its logits at 4 bits too."""
    from mcuforge.compress.quantize import QuantizeOptions, quantize
    from mcuforge.train.trainer import build_model

    model = build_model(context.spec, context.dataset)
    fine_tune(model, context, TrainingOptions(epochs=2, learning_rate=3e-3))
    return quantize(model, QuantizeOptions(epochs=1, weight_bits=4, layer_weight_bits={"logits": 4}), context)


@pytest.fixture(scope="module")
def int4_model(int4_qat) -> bytes:
    """int4_qat converted."""
    from mcuforge.deploy.convert import convert_model

    return convert_model(int4_qat, None)


def test_converter_packs_4_bit_layers_as_int4_and_keeps_the_first_at_int8(int4_model):
    from mcuforge.deploy.tflite_model import parse_tflite

    graph = parse_tflite(int4_model).main
    filters = [(op.opcode, graph.tensor(op.inputs[1])) for op in graph.operators if op.opcode in ("CONV_2D", "FULLY_CONNECTED")]
    assert [(opcode, t.dtype) for opcode, t in filters] == [("CONV_2D", "int8"), ("CONV_2D", "int4"), ("FULLY_CONNECTED", "int4")]
    for _, tensor in filters[1:]:
        assert tensor.nbytes == (tensor.elements + 1) // 2
        values = tensor.array()
        assert values.min() >= -8 and values.max() <= 7 and len(np.unique(values)) > 8


def test_engine_equals_tflm_on_every_test_sample_in_the_int8_arena(int4_model, context):
    from mcuforge.deploy.tflite_model import int4_as_int8, parse_tflite
    from mcuforge.deploy.tflm import Emulator, prepare_input
    from mcuforge.firmware.engine import Engine
    from mcuforge.firmware.prepared import PreparedEngine, prepared_image

    emulator = Emulator(parse_tflite(int4_model), int4_model)
    x = prepare_input(context.dataset.x_test, emulator.inputs[0])
    expected = _tflm(int4_model, context.dataset.x_test)
    with Engine(int4_model) as engine, PreparedEngine.from_image(prepared_image(int4_model, "dsp"), "dsp") as prepared:
        for sample, want in zip(x, expected):
            for runner in (engine, prepared):
                got = runner.invoke([sample.reshape(emulator.inputs[0].shape)])[0]
                np.testing.assert_array_equal(got.reshape(-1).astype(np.int32), want.reshape(-1).astype(np.int32))
        unpacked = int4_as_int8(int4_model)  # TFLM's own unpacking is the oracle for this copy
        np.testing.assert_array_equal(_tflm(unpacked, context.dataset.x_test), expected)
        with Engine(unpacked) as int8:
            assert engine.arena_used == int8.arena_used


@pytest.mark.slow
def test_firmware_on_qemu_equals_tflm(int4_model, tmp_path):
    from test_firmware_qemu import assert_bit_exact

    path = tmp_path / "digits_int4.tflite"
    path.write_bytes(int4_model)
    vectors = np.random.default_rng(4).integers(-128, 128, size=(6, 1, 8, 8, 1)).astype(np.int8)
    assert_bit_exact(path, "qemu-m4", vectors, tmp_path)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"weight_bits": 3}, r"quantize\.weight_bits: expected one of 4, 8.*Received: 3"),
        ({"mode": "ptq", "weight_bits": 4}, r"4-bit weights need mode qat .*set mode: qat or weight_bits: 8"),
        ({"layer_weight_bits": {"conv1": 2}}, r"layer_weight_bits\.conv1 must be 4 or 8, got 2"),
    ],
)
def test_bad_weight_bits_fail_the_up_front_check(options, message):
    from mcuforge.pipeline import check_spec

    with pytest.raises(MCUForgeError, match=message):
        check_spec(parse_spec(_digits_spec(steps=["quantize"], options={"quantize": options})))


def test_a_layer_weight_bits_name_not_in_the_model_names_the_layers(context):
    from mcuforge.compress.quantize import QuantizeOptions, quantize
    from mcuforge.train.trainer import build_model

    model = build_model(context.spec, context.dataset)
    with pytest.raises(MCUForgeError, match=r"layer_weight_bits names conv9, not a conv or dense layer.*use one of conv0, conv1, logits"):
        quantize(model, QuantizeOptions(weight_bits=4, layer_weight_bits={"conv9": 8}), context)


@pytest.fixture(scope="module")
def separable_qat(context):
    """A separable CNN for digits (stem, depthwise, pointwise, dense), every layer at 4 bits, QAT for 1 epoch."""
    import dataclasses

    from mcuforge.compress.quantize import QuantizeOptions, quantize
    from mcuforge.spec import ModelSpec
    from mcuforge.train.trainer import build_model

    shape = {"stem_channels": 8, "stem_kernel": [3, 3], "stem_stride": 1, "channels": [8], "kernels": [3], "strides": [2]}
    spec = dataclasses.replace(context.spec, model=ModelSpec(arch="separable_cnn", options=shape))
    model = build_model(spec, context.dataset)
    bits = {name: 4 for name in ("stem_conv", "logits")}
    return quantize(model, QuantizeOptions(epochs=1, weight_bits=4, layer_weight_bits=bits), Context(spec, context.dataset))


@pytest.fixture(scope="module")
def separable_model(separable_qat) -> bytes:
    """separable_qat converted."""
    from mcuforge.deploy.convert import convert_model

    return convert_model(separable_qat, None)


def _least_error_clips(columns: np.ndarray, shrink_factors: np.ndarray) -> np.ndarray:
    """Per column, by brute force: the clip among shrink * max|w| whose 15-level symmetric rounding errs least."""
    clips = []
    for w in columns.T.astype(np.float64):
        candidates = [shrink * np.abs(w).max() for shrink in shrink_factors]
        errors = [np.sum((w - np.clip(np.round(w / (c / 7)), -7, 7) * (c / 7)) ** 2) for c in candidates]
        clips.append(candidates[int(np.argmin(errors))])
    return np.array(clips)


def test_least_error_clip_is_the_brute_force_search():
    import tensorflow as tf

    from mcuforge.train.weight_range import SHRINK_FACTORS, least_error_clip

    columns = np.random.default_rng(18).laplace(0, 0.1, size=(18, 6)).astype(np.float32)  # heavy tails
    want = _least_error_clips(columns, SHRINK_FACTORS)
    np.testing.assert_allclose(least_error_clip(tf.constant(columns), 4).numpy(), want, rtol=1e-6)
    shrinks = want / np.abs(columns).max(axis=0)
    assert shrinks.min() < 0.95 and len(np.unique(np.round(shrinks, 2))) > 2


def _kernel_columns(layer_kind: str, kernel: np.ndarray) -> np.ndarray:
    """The kernel as one column per quantization channel: Conv2D's last axis, depthwise's last two, Dense's whole."""
    return {"conv": kernel.reshape(-1, kernel.shape[-1]), "depthwise": kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1]), "dense": kernel.reshape(-1, 1)}[layer_kind]


@pytest.mark.parametrize(
    "model, name, kind, bits",
    [
        ("int4_qat", "conv0", "conv", 8),
        ("int4_qat", "conv1", "conv", 4),
        ("int4_qat", "logits", "dense", 4),
        ("separable_qat", "block0_dw", "depthwise", 4),
    ],
)
def test_each_layer_trains_over_its_range(model, name, kind, bits, request):
    """8 bits: tfmot's min/max; 4 bits: the least-error clip per channel (depthwise too) or per tensor (dense).

    The layer's weight quantizer runs in training on the model's weights with fresh range variables:
    its range and its fake-quantized output against the brute-force search.
    """
    import tensorflow as tf

    from mcuforge.train.weight_range import SHRINK_FACTORS

    wrapper = request.getfixturevalue(model).get_layer(f"quant_{name}")
    kernel = next(w.numpy() for w in wrapper.weights if w.name.endswith("kernel:0"))
    columns = _kernel_columns(kind, kernel)
    want = np.abs(columns).max(axis=0) if bits == 8 else _least_error_clips(columns, SHRINK_FACTORS)
    shape = () if kind == "dense" else want.shape
    ranges = {"min_var": tf.Variable(np.zeros(shape, np.float32)), "max_var": tf.Variable(np.zeros(shape, np.float32))}
    quantized = wrapper.quantize_config.weight_quantizer(tf.constant(kernel), True, ranges).numpy()
    np.testing.assert_allclose(np.atleast_1d(ranges["max_var"].numpy()), want, rtol=1e-6)
    np.testing.assert_allclose(ranges["min_var"].numpy(), -ranges["max_var"].numpy())
    levels = 2 ** (bits - 1) - 1
    step = want.astype(np.float32) / levels
    np.testing.assert_allclose(_kernel_columns(kind, quantized), np.clip(np.round(columns / step), -levels, levels) * step, atol=1e-6)


def test_depthwise_filters_are_int4_per_channel_and_the_engine_equals_tflm(separable_model, context):
    """Each depthwise channel has its own scale and reaches -7 or 7; engine (host, prepared image) equals TFLM."""
    from mcuforge.deploy.tflite_model import parse_tflite
    from mcuforge.deploy.tflm import Emulator, prepare_input
    from mcuforge.firmware.engine import Engine
    from mcuforge.firmware.prepared import PreparedEngine, prepared_image

    data = separable_model
    graph = parse_tflite(data).main
    depthwise = next(graph.tensor(op.inputs[1]) for op in graph.operators if op.opcode == "DEPTHWISE_CONV_2D")
    assert depthwise.dtype == "int4" and len(depthwise.quantization.scales) == 8
    assert (np.abs(depthwise.array().reshape(-1, 8)).max(axis=0) == 7).all()
    emulator = Emulator(parse_tflite(data), data)
    x = prepare_input(context.dataset.x_test[:32], emulator.inputs[0])
    expected = _tflm(data, context.dataset.x_test[:32])
    with Engine(data) as engine, PreparedEngine.from_image(prepared_image(data, "dsp"), "dsp") as prepared:
        for sample, want in zip(x, expected):
            for runner in (engine, prepared):
                got = runner.invoke([sample.reshape(emulator.inputs[0].shape)])[0]
                np.testing.assert_array_equal(got.reshape(-1).astype(np.int32), want.reshape(-1).astype(np.int32))


def test_a_saved_4_bit_model_reloads_with_its_quantizers_and_converts_to_the_same_bytes(separable_qat, separable_model, tmp_path):
    """The pipeline saves the QAT model and deploy reloads it (trainer.load_model)."""
    from mcuforge.train.weight_range import FourBitQuantizeConfig
    from mcuforge.deploy.convert import convert_model
    from mcuforge.train.trainer import load_model, save_model

    save_model(separable_qat, tmp_path / "qat.h5")
    reloaded = load_model(tmp_path / "qat.h5")
    assert isinstance(reloaded.get_layer("quant_block0_dw").quantize_config, FourBitQuantizeConfig)
    assert convert_model(reloaded, None) == separable_model
