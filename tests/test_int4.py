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


def _least_error_clips(columns: np.ndarray, shrink_factors: np.ndarray) -> np.ndarray:
    """Per column, by brute force: the clip among shrink * max|w| whose 15-level symmetric rounding errs least."""
    clips = []
    for w in columns.T.astype(np.float64):
        candidates = [shrink * np.abs(w).max() for shrink in shrink_factors]
        errors = [np.sum((w - np.clip(np.round(w / (c / 7)), -7, 7) * (c / 7)) ** 2) for c in candidates]
        clips.append(candidates[int(np.argmin(errors))])
    return np.array(clips)


def test_least_error_clip_is_the_brute_force_search_per_channel_and_per_tensor():
    import tensorflow as tf

    from mcuforge.compress.weight_range import SHRINK_FACTORS, least_error_clip

    rng = np.random.default_rng(18)
    kernel = rng.laplace(0, 0.1, size=(3, 3, 2, 6)).astype(np.float32)  # heavy tails: most channels clip inside max|w|
    columns = kernel.reshape(-1, 6)
    want = _least_error_clips(columns, SHRINK_FACTORS)
    np.testing.assert_allclose(least_error_clip(tf.constant(kernel), True, 4).numpy(), want, rtol=1e-6)
    shrinks = want / np.abs(columns).max(axis=0)
    assert shrinks.min() < 0.95 and len(np.unique(np.round(shrinks, 2))) > 2
    whole = least_error_clip(tf.constant(kernel), False, 4).numpy()
    np.testing.assert_allclose(whole, _least_error_clips(columns.reshape(-1, 1), SHRINK_FACTORS)[0], rtol=1e-6)


def test_4_bit_layers_train_over_the_least_error_range_and_8_bit_ones_over_min_max(int4_qat):
    """Each layer's weight quantizer, in training, on the model's weights: its range and its fake-quantized output."""
    import tensorflow as tf

    from mcuforge.compress.weight_range import SHRINK_FACTORS

    for name, per_axis, bits in (("conv0", True, 8), ("conv1", True, 4), ("logits", False, 4)):
        wrapper = int4_qat.get_layer(f"quant_{name}")
        kernel = next(w.numpy() for w in wrapper.weights if w.name.endswith("/kernel:0"))
        columns = kernel.reshape(-1, kernel.shape[-1]) if per_axis else kernel.reshape(-1, 1)
        want = np.abs(columns).max(axis=0) if bits == 8 else _least_error_clips(columns, SHRINK_FACTORS)
        shape = want.shape if per_axis else ()
        ranges = {"min_var": tf.Variable(np.zeros(shape, np.float32)), "max_var": tf.Variable(np.zeros(shape, np.float32))}
        quantized = wrapper.quantize_config.weight_quantizer(tf.constant(kernel), True, ranges).numpy()
        np.testing.assert_allclose(np.atleast_1d(ranges["max_var"].numpy()), want, rtol=1e-6)
        np.testing.assert_allclose(ranges["min_var"].numpy(), -ranges["max_var"].numpy())
        levels = 2 ** (bits - 1) - 1
        step = want.astype(np.float32) / levels
        expected = np.clip(np.round(columns / step), -levels, levels) * step
        np.testing.assert_allclose(quantized.reshape(columns.shape), expected, rtol=0, atol=1e-6)


def test_a_saved_4_bit_model_reloads_and_converts_to_the_same_bytes(int4_qat, int4_model, tmp_path):
    """The pipeline saves the QAT model and deploy reloads it: the stored ranges alone decide the INT4 values."""
    from mcuforge.deploy.convert import convert_model
    from mcuforge.train.trainer import load_model, save_model

    save_model(int4_qat, tmp_path / "qat.h5")
    assert convert_model(load_model(tmp_path / "qat.h5"), None) == int4_model
