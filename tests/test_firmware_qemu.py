"""Emulator regression: firmware images run in QEMU give TFLM's output bytes, model by model.

Every int8 model in ../shared/models/tflite-micro and every zoo architecture
(converted to int8 here with TensorFlow's converter, random seeded weights) is
built for qemu-m4 and qemu-m33; the test vectors the image carries run in QEMU
and every output byte is compared with the TFLM host interpreter's output.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.firmware import build, console, qemu

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite-micro"
TARGETS = ("qemu-m4", "qemu-m33")
PERSON_DIR = SHARED_MODELS / "person_detection"


def _tflm_outputs(model_path: Path, vectors: np.ndarray) -> list[list[np.ndarray]]:
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.deploy.tflm import Emulator

    emulator = Emulator(read_tflite(model_path), model_path.read_bytes())
    return [emulator.invoke(vector.reshape(emulator.inputs[0].shape)) for vector in vectors]


def assert_bit_exact(model_path: Path, target: str, vectors: np.ndarray, tmp_path: Path, timeout: float = 120) -> console.RunResult:
    image = build.build_image(model_path, target, out_dir=tmp_path, inputs=vectors)
    result = qemu.run_qemu(image, timeout=timeout)
    expected = _tflm_outputs(model_path, image.vectors)
    assert len(result.outputs) == len(expected), f"{model_path.name} on {target}: {len(result.outputs)} vectors reported, {len(expected)} run"
    for index, (got, want) in enumerate(zip(result.outputs, expected)):
        assert len(got) == len(want), f"{model_path.name} on {target}, input {index}: {len(got)} outputs, TFLM has {len(want)}"
        for number, (g, w) in enumerate(zip(got, want)):
            assert g.dtype == w.dtype and g.size == w.size, f"{model_path.name} on {target}, input {index}, output {number}: {g.dtype}{g.shape} vs TFLM {w.dtype}{w.shape}"
            g32, w32 = g.reshape(-1).astype(np.int32), w.reshape(-1).astype(np.int32)
            differing = np.flatnonzero(g32 != w32)
            assert differing.size == 0, (
                f"{model_path.name} on {target}, input {index}, output {number}: first difference at element "
                f"{differing[0]}: firmware {g32[differing[0]]}, TFLM {w32[differing[0]]} ({differing.size} differ)"
            )
    assert len(result.cycles) == len(expected) and all(c > 0 for c in result.cycles)
    return result


def _random(shape, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 127, size=(count, *shape), endpoint=True).astype(np.int8)


def _person_image(name: str) -> np.ndarray:
    """The MANIFEST's recipe: 8-bit palette BMP, pixels at byte 1078, rows bottom-up, bytes as int8."""
    raw = (PERSON_DIR / "testdata" / name).read_bytes()[1078 : 1078 + 96 * 96]
    return np.frombuffer(raw, np.uint8).reshape(96, 96)[::-1].astype(np.uint8).view(np.int8).reshape(1, 96, 96, 1)


@pytest.mark.parametrize("target", TARGETS)
def test_hello_world_every_input_value(target, tmp_path):
    every_int8 = np.arange(-128, 128, dtype=np.int8).reshape(256, 1, 1)
    result = assert_bit_exact(SHARED_MODELS / "hello_world" / "hello_world_int8.tflite", target, every_int8, tmp_path)
    assert int(result.outputs[64][0].reshape(-1)[0]) == 126  # x = pi/2 (int8 -64) -> 126, the MANIFEST's known result


@pytest.mark.parametrize("target", TARGETS)
def test_micro_speech(target, tmp_path):
    model = SHARED_MODELS / "micro_speech" / "micro_speech_quantized.tflite"
    vectors = _random((1, 1960), 6, seed=1)
    labels = tmp_path / "labels.txt"
    labels.write_text("silence\nunknown\nyes\nno\n")
    image = build.build_image(model, target, out_dir=tmp_path, inputs=vectors, labels_path=labels)
    result = qemu.run_qemu(image)
    expected = _tflm_outputs(model, image.vectors)
    for index, want in enumerate(expected):
        np.testing.assert_array_equal(result.outputs[index][0].astype(np.int32), want[0].astype(np.int32), err_msg=f"micro_speech on {target}, input {index}")
        best = int(np.argmax(want[0].reshape(-1)))
        assert result.top[index][0][:2] == (best, ["silence", "unknown", "yes", "no"][best])


@pytest.mark.parametrize("target", TARGETS)
def test_person_detect_known_images_and_noise(target, tmp_path):
    vectors = np.concatenate([_person_image("person.bmp"), _person_image("no_person.bmp"), _random((96, 96, 1), 1, seed=2)])
    result = assert_bit_exact(PERSON_DIR / "person_detect.tflite", target, vectors, tmp_path)
    # The MANIFEST's known results, measured with TFLM: an independent check of the oracle and the image path.
    assert result.outputs[0][0].reshape(-1).tolist() == [-113, 113]
    assert result.outputs[1][0].reshape(-1).tolist() == [57, -57]


def test_person_detect_with_patched_bias_dimensions(tmp_path):
    model = PERSON_DIR / "person_detect.qdim_patched.tflite"
    result = assert_bit_exact(model, "qemu-m4", _person_image("person.bmp"), tmp_path)
    assert result.outputs[0][0].reshape(-1).tolist() == [-113, 113]


def test_the_lstm_model_is_refused_at_build_time_naming_the_op(tmp_path):
    """mnist_lstm is int8 but needs UNIDIRECTIONAL_SEQUENCE_LSTM, which the engine does not implement."""
    with pytest.raises(MCUForgeError, match="no kernel for op UNIDIRECTIONAL_SEQUENCE_LSTM"):
        build.build_image(SHARED_MODELS / "mnist_lstm" / "trained_lstm_int8.tflite", "qemu-m4", out_dir=tmp_path)
    assert list(tmp_path.glob("*.elf")) == []


@pytest.mark.parametrize("target", ("qemu-m3", "qemu-m7", "qemu-m55"))
def test_other_emulated_cores(target, tmp_path):
    assert_bit_exact(SHARED_MODELS / "micro_speech" / "micro_speech_quantized.tflite", target, _random((1, 1960), 2, seed=3), tmp_path)


# Small instances of every zoo architecture; the input shapes are those of tests/test_zoo.py.
ZOO_CASES = [
    ("tiny_cnn", (8, 8, 1), 10, 1.0),
    ("ds_cnn", (49, 10, 1), 12, 0.5),
    ("mobilenet_v1", (32, 32, 3), 4, 0.25),
    ("resnet8", (32, 32, 3), 10, 0.5),
    ("autoencoder", (64,), 0, 0.5),
    ("gesture_cnn", (32, 32, 1), 10, 0.5),
]


def _recalibrate_batch_norm(model, x: np.ndarray) -> None:
    """Set every BatchNormalization's moving statistics to those of `x` (weights unchanged).

    Untrained, a deep zoo model's activations vanish (mobilenet_v1's logits
    are ~1e-17), which gives a softmax input scale TFLM itself rejects; with
    calibrated statistics the activations have the ranges a trained model has.
    """
    import tensorflow as tf

    batch_norms = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    if not batch_norms:
        return
    for layer in batch_norms:
        layer.momentum = 0.0  # one step copies the batch statistics
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    model.fit(x, np.zeros((len(x), *model.output_shape[1:]), np.float32), batch_size=len(x), epochs=1, verbose=0)


@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory) -> dict[str, Path]:
    """Each zoo architecture as an int8 .tflite (seeded random weights, seeded calibration data)."""
    import tensorflow as tf

    from mcuforge.deploy.convert import convert_model
    from mcuforge.train import zoo

    out = tmp_path_factory.mktemp("zoo")
    models = {}
    for arch, shape, classes, width in ZOO_CASES:
        tf.keras.utils.set_random_seed(0)
        model = zoo.build(arch, shape, classes, width)
        representative = np.random.default_rng(0).normal(size=(16, *shape)).astype(np.float32)
        _recalibrate_batch_norm(model, representative)
        models[arch] = out / f"{arch}.tflite"
        models[arch].write_bytes(convert_model(model, representative))
    return models


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("arch", [case[0] for case in ZOO_CASES])
def test_zoo_model(arch, target, zoo_models, tmp_path):
    shape = next(case[1] for case in ZOO_CASES if case[0] == arch)
    assert_bit_exact(zoo_models[arch], target, _random(shape, 3, seed=4), tmp_path)


def test_an_engine_error_on_the_device_fails_the_run_naming_it(tmp_path):
    """hello_world_float with its activations retyped int16 (no kernel of ours runs int16): the interpreter's
    firmware says why on the device (a prepared build refuses it on the host, before anything is flashed)."""
    from engine.oplib import edited

    def to_int16(tree):
        for tensor in tree.subgraphs[0].tensors:
            if tree.buffers[tensor.buffer].data is None:
                tensor.type = 7  # INT16

    model = tmp_path / "hello_world_int16.tflite"
    model.write_bytes(edited((SHARED_MODELS / "hello_world" / "hello_world_float.tflite").read_bytes(), to_int16))
    inputs = np.array([[1]], np.int16)
    with pytest.raises(MCUForgeError, match="INT16"):
        build.build_image(model, "qemu-m4", out_dir=tmp_path, inputs=inputs)
    image = build.build_image(model, "qemu-m4", out_dir=tmp_path, inputs=inputs, arena_bytes=4096, prepared=False)
    with pytest.raises(MCUForgeError, match=r"hello_world_int16 failed on qemu-m4 \(QEMU mps2-an386\): load MF_ERR_UNSUPPORTED_TYPE op=0 .*name=INT16"):
        qemu.run_qemu(image)


def test_a_run_that_outlasts_its_timeout_is_stopped(tmp_path):
    vectors = _random((96, 96, 1), 1, seed=5)
    image = build.build_image(PERSON_DIR / "person_detect.tflite", "qemu-m4", out_dir=tmp_path, inputs=vectors)
    with pytest.raises(MCUForgeError, match=r"did not finish in QEMU \(mps2-an386\) within 0 s"):
        qemu.run_qemu(image, timeout=0.05)


def test_systick_cycles_match_the_instruction_count_under_icount(tmp_path):
    """Under -icount shift=0 one instruction is 1 ns, so SysTick at clock_hz ticks insns * clock_hz / 1e9 times.

    The instruction count comes from the qemu-icount plugin (counting every
    guest instruction between the marks around mf_invoke): an oracle
    independent of the firmware's own counter.
    """
    import subprocess

    plugin = tmp_path / "libcount.so"
    source = SHARED_MODELS.parents[1] / "tools" / "qemu-icount" / "count.c"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(plugin), str(source)], check=True)
    image = build.build_image(SHARED_MODELS / "micro_speech" / "micro_speech_quantized.tflite", "qemu-m3", out_dir=tmp_path, inputs=_random((1, 1960), 1, seed=6))
    symbols = subprocess.run(["arm-none-eabi-nm", str(image.elf)], capture_output=True, text=True, check=True).stdout
    mark = int(re.search(r"^([0-9a-f]+) T mf_app_mark$", symbols, re.M)[1], 16)
    proc = subprocess.run(
        qemu.qemu_command(image, ["-plugin", f"{plugin},mark=0x{mark:x}", "-d", "plugin"]), capture_output=True, text=True, timeout=120
    )
    instructions = int(re.search(r"^MARK 1 total=\d+ delta=(\d+)", proc.stderr, re.M)[1])
    cycles = console.parse_run(proc.stdout).cycles[0]
    assert instructions > 1_000_000
    assert abs(cycles - instructions * image.board.clock_hz / 1e9) <= 2


@pytest.mark.slow
def test_systick_counts_across_its_24_bit_wraps(tmp_path):
    """Nine identical person_detect inferences on the M3 span more than 2**24 SysTick ticks.

    The same input runs the same instructions, so every count must agree; a
    wrap handled wrongly would put one of them 2**24 ticks off.
    """
    vectors = np.repeat(_person_image("person.bmp"), 9, axis=0)
    image = build.build_image(PERSON_DIR / "person_detect.tflite", "qemu-m3", out_dir=tmp_path, inputs=vectors)
    cycles = qemu.run_qemu(image, timeout=300).cycles
    assert len(cycles) == 9 and sum(cycles) > 2**24
    assert max(cycles) - min(cycles) <= 2


def test_cli_run_reports_the_known_hello_world_result(tmp_path):
    """`mcuforge firmware run` end to end: x = pi/2 (int8 -64) gives 126, the MANIFEST's known result."""
    import subprocess
    import sys

    inputs = tmp_path / "x.npy"
    np.save(inputs, np.array([[-64]], np.int8))
    cli = Path(sys.executable).parent / "mcuforge"
    model = SHARED_MODELS / "hello_world" / "hello_world_int8.tflite"
    result = subprocess.run(
        [str(cli), "firmware", "run", str(model), "--target", "qemu-m33", "--input", str(inputs), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "model hello_world_int8, input x.npy" in result.stdout
    assert re.search(r"^  vector 0: \[126\] .* emulated SysTick cycles at 20 MHz$", result.stdout, re.M)
    assert (tmp_path / "hello_world_int8.elf").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("arch", [case[0] for case in ZOO_CASES])
def test_prepared_zoo_images_link_no_soft_float_double(arch, zoo_models, tmp_path):
    """Prepared images compute every multiplier on the host: no soft-float double routine is linked."""
    import subprocess

    image = build.build_image(zoo_models[arch], "qemu-m4", out_dir=tmp_path)
    symbols = subprocess.run(["arm-none-eabi-nm", str(image.elf)], capture_output=True, text=True, check=True).stdout
    assert "__aeabi_d" not in symbols
