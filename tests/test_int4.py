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
def int4_model(context) -> bytes:
    """The digits tiny_cnn (2 epochs), 4-bit QAT for 1 epoch with its logits at 4 bits too, converted."""
    from mcuforge.compress.quantize import QuantizeOptions, quantize
    from mcuforge.deploy.convert import convert_model
    from mcuforge.train.trainer import build_model

    model = build_model(context.spec, context.dataset)
    fine_tune(model, context, TrainingOptions(epochs=2, learning_rate=3e-3))
    qat = quantize(model, QuantizeOptions(epochs=1, weight_bits=4, layer_weight_bits={"logits": 4}), context)
    return convert_model(qat, None)


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
