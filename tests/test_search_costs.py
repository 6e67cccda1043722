"""A search candidate's costs against the firmware actually built and counted under QEMU.

Oracles: the linked ELF's model array (arm-none-eabi-nm) and the arena the
firmware reports on qemu-m4 for flash and RAM; MACs written out by hand from
the architecture; fresh qemu-icount counts of candidates the cost model was not
fitted on (bench/search_cost_model.py draws its candidates from a seeded
random space; these are written here) for instructions per inference.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.firmware import latency_model
from mcuforge.firmware.candidate_cost import candidate_cost, tflite_cost
from mcuforge.firmware.icount import instructions_per_inference

# The accuracy bench/search_cost_model.py measured on its held-out candidates (README: Search: candidate costs).
TOLERANCE = 0.10


def _candidate(input_shape, stem_kernel, stem_stride, stem_channels, blocks, classes):
    """A DS-CNN-style tf_keras model with seeded random weights, and a representative sample."""
    import tf_keras

    tf_keras.utils.set_random_seed(1)
    layers = tf_keras.layers
    inputs = tf_keras.Input(shape=input_shape)
    x = layers.Conv2D(stem_channels, stem_kernel, strides=stem_stride, padding="same", activation="relu")(inputs)
    for kernel, stride, channels in blocks:
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", activation="relu")(x)
        x = layers.Conv2D(channels, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, layers.Softmax()(layers.Dense(classes)(x)), name="tiny")
    return model, np.random.default_rng(1).normal(size=(4, *input_shape)).astype(np.float32)


# digits 8x8: stem 3x3/1 to 8 channels (8*8*8*9 MACs), depthwise 3x3/2 (4*4*8*9), pointwise to 16 (4*4*16*8), dense 16 -> 10.
DIGITS = ((8, 8, 1), 3, 1, 8, [(3, 2, 16)], 10)
DIGITS_MACS = 8 * 8 * 8 * 9 + 4 * 4 * 8 * 9 + 4 * 4 * 16 * 8 + 16 * 10
# keywords 49x10: stem 10x4/2 to 12 channels (25x5), depthwise 5x5 + pointwise to 20, depthwise 3x3/2 (13x3) + pointwise to 16.
KEYWORDS = ((49, 10, 1), (10, 4), 2, 12, [(5, 1, 20), (3, 2, 16)], 12)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each candidate's model, representative sample and int8 .tflite path."""
    from mcuforge.deploy.convert import convert_model

    out = tmp_path_factory.mktemp("candidates")
    result = {}
    for name, arch in (("digits", DIGITS), ("keywords", KEYWORDS)):
        model, representative = _candidate(*arch)
        path = out / f"{name}.tflite"
        path.write_bytes(convert_model(model, representative))
        result[name] = (model, representative, path)
    return result


@pytest.fixture(scope="module")
def built(converted, tmp_path_factory):
    """Firmware images, built once per (candidate, QEMU board, -mcpu)."""
    from mcuforge.firmware.build import build_image

    out = tmp_path_factory.mktemp("firmware")
    cache = {}

    def image(name: str, board: str, cpu: str | None = None):
        if (name, board, cpu) not in cache:
            cache[name, board, cpu] = build_image(converted[name][2], board, out_dir=out / f"{board}-{cpu}", name=name, cpu=cpu)
        return cache[name, board, cpu]

    return image


def _symbol_size(elf, symbol: str) -> int:
    listing = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(rf"^[0-9a-f]+ ([0-9a-f]+) \w {symbol}$", listing, re.M)[1], 16)


@pytest.mark.slow
def test_flash_arena_and_macs_equal_the_built_firmware(converted, built):
    from mcuforge.firmware.qemu import run_qemu

    model, representative, path = converted["digits"]
    cost = candidate_cost(model, representative, "cortex-m4-256k")
    image = built("digits", "qemu-m4")
    run = run_qemu(image)
    assert run.done and not run.error
    assert cost.flash_bytes == _symbol_size(image.elf, "g_app_model_data")
    assert cost.arena_bytes == run.arena_used == _symbol_size(image.elf, "mf_app_arena")
    assert cost.macs == DIGITS_MACS


@pytest.mark.slow
@pytest.mark.parametrize("name, target, board, cpu", [
    ("digits", "cortex-m4-256k", "qemu-m4", None),
    ("keywords", "cortex-m4-256k", "qemu-m4", None),
    ("keywords", "cortex-m0plus-264k", "qemu-m3", "cortex-m0plus"),  # QEMU has no M0+: its Armv6-M code on the M3
])
def test_instructions_within_tolerance_of_a_fresh_qemu_count(converted, built, name, target, board, cpu):
    predicted = tflite_cost(converted[name][2].read_bytes(), target).instructions
    measured = instructions_per_inference(built(name, board, cpu))
    assert abs(predicted / measured - 1) <= TOLERANCE, (predicted, measured)


@pytest.mark.slow
def test_cortex_m0plus_is_measured_as_armv6m_code_on_the_m3(built):
    image = built("keywords", "qemu-m3", "cortex-m0plus")  # built above for the count
    attributes = subprocess.run(["arm-none-eabi-readelf", "-A", str(image.elf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Tag_CPU_arch: v6S-M$", attributes, re.M)
    assert image.board.qemu_machine == "mps2-an385"


@pytest.mark.slow
def test_the_reference_is_the_specs_own_model_measured_on_its_built_firmware(tmp_path, monkeypatch):
    from mcuforge.firmware import build
    from mcuforge.firmware.boards import load_board
    from mcuforge.firmware.qemu import run_qemu
    from mcuforge.pipeline import search_target
    from mcuforge.spec import parse_spec
    from mcuforge.train.search.stage import reference_cost

    images = []
    real_build = build.build_image
    monkeypatch.setattr(build, "build_image", lambda *args, **kwargs: images.append(real_build(*args, **kwargs)) or images[-1])
    spec = parse_spec({"name": "x", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"}, "search": {}})
    cost = reference_cost(spec, search_target(spec), tmp_path)
    # tiny_cnn on 8x8 digits: conv 3x3 1->16 (same), conv 3x3/2 16->32, dense 4*4*32 -> 10
    assert cost.macs == 8 * 8 * 16 * 9 + 4 * 4 * 32 * 9 * 16 + 4 * 4 * 32 * 10
    [image] = images
    assert image.board.name == "qemu-m4"  # cortex-m4-256k's core
    run = run_qemu(image)
    assert run.done and not run.error
    assert cost.flash_bytes == _symbol_size(image.elf, "g_app_model_data")
    assert cost.arena_bytes == run.arena_used == _symbol_size(image.elf, "mf_app_arena")
    # The firmware's own SysTick under QEMU -icount ticks clock_hz / 1e9 per instruction (firmware/qemu.py)
    assert cost.instructions * load_board("qemu-m4").clock_hz / 1e9 == pytest.approx(run.cycles[0], rel=0.01)


# digits 8x8, two 3x3 blocks: the first 8 wide (channel-major loops), the second strided to 4 wide, narrower than the
# NHWC loops' threshold (6): with those loops the firmware links both families, channel-major alone is smaller.
WIDE_THEN_NARROW = ((8, 8, 1), 3, 1, 8, [(3, 1, 8), (3, 2, 16)], 10)
NARROW_OP = 3  # stem, wide depthwise, pointwise, narrow depthwise, ...


@pytest.mark.slow
def test_a_candidate_whose_nhwc_build_passes_the_code_budget_costs_the_channel_major_build(tmp_path):
    from mcuforge.deploy.convert import convert_model
    from mcuforge.firmware.build import build_image
    from mcuforge.firmware.code_budget import CORTEX_M4, budgeted_image
    from mcuforge.firmware.latency_model import op_features

    path = tmp_path / "candidate.tflite"
    path.write_bytes(convert_model(*_candidate(*WIDE_THEN_NARROW)))
    model = path.read_bytes()
    nhwc_code = budgeted_image(model, "dsp", 10**6, CORTEX_M4).code_bytes[0]
    roomy = tflite_cost(model, "cortex-m4-256k", code_budget=10**6)
    tight = tflite_cost(model, "cortex-m4-256k", code_budget=nhwc_code - 1)

    firmware = build_image(path, "qemu-m4", out_dir=tmp_path / "firmware", code_budget=nhwc_code - 1)
    assert firmware.engine_loops.startswith("engine loops: channel-major loops for narrow 3x3 depthwise")
    assert tight.flash_bytes == _symbol_size(firmware.elf, "g_app_model_data")
    assert tight.arena_bytes == _symbol_size(firmware.elf, "mf_app_arena") != roomy.arena_bytes  # the NHWC loops' scratch

    # The narrow layer is priced as the loop each build runs, the other ops alike.
    fitted = latency_model.latency_model("cortex-m4", "dsp")
    ops = op_features(model)
    assert ops[NARROW_OP].kind == "DEPTHWISE_CONV_2D:3x3_nhwc"
    channel_major = [*ops[:NARROW_OP], dataclasses.replace(ops[NARROW_OP], kind="DEPTHWISE_CONV_2D:3x3"), *ops[NARROW_OP + 1:]]
    assert roomy.instructions == round(sum(fitted.op_instructions(ops)))
    assert tight.instructions == round(sum(fitted.op_instructions(channel_major))) != roomy.instructions


def test_unknown_target_is_one_clear_error(converted):
    with pytest.raises(MCUForgeError, match="unknown target 'cortex-m9'.*cortex-m4-256k"):
        tflite_cost(converted["digits"][2].read_bytes(), "cortex-m9")


def test_op_without_a_fitted_cost_is_named():
    import tf_keras

    inputs = tf_keras.Input(shape=(8, 8, 1))
    x = tf_keras.layers.MaxPooling2D(2)(tf_keras.layers.Conv2D(4, 3, padding="same")(inputs))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(3)(tf_keras.layers.Flatten()(x)))
    representative = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
    with pytest.raises(MCUForgeError, match="op MAX_POOL_2D has no fitted cost on cortex-m4.*make search-cost-model"):
        candidate_cost(model, representative, "cortex-m4-256k")


def test_engine_sources_changed_since_the_fit_asks_for_a_refit(converted, monkeypatch):
    monkeypatch.setattr(latency_model, "engine_digest", lambda kernels: "0" * 16)
    with pytest.raises(MCUForgeError, match="fitted on engine sources [0-9a-f]{16}, these are 0{16}: refit with `make search-cost-model`"):
        tflite_cost(converted["digits"][2].read_bytes(), "cortex-m4-256k")
