"""Vibration demo: the device's features equal the data set's bit for bit, and the injected fault raises the alarm.

Oracles: mcuforge.train.datasets.vibration.window_features (the Python
definition the model was trained on) for the features; the TFLM host
interpreter for the scores; the stream generator's own fault flags for when
the fault begins.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from mcuforge.firmware import demos
from mcuforge.train.datasets import vibration

ALARM_WITHIN_WINDOWS = 1  # the first faulty window, or the one after it
SMALL = {"train_windows": 300, "val_windows": 100, "test_normal_windows": 10, "test_faulty_windows": 10}


def _integer_features(features: np.ndarray) -> np.ndarray:
    """The data set's float features back to the integers they are (log2_q8 / 4096, exact in float32)."""
    scaled = np.asarray(features, np.float64) * vibration.FEATURE_DIVISOR
    assert np.array_equal(scaled, np.round(scaled))
    return scaled.astype(np.int64)


@pytest.mark.parametrize("segment", [64, 128, 256, 512, 1024])
def test_one_row_of_tables_holds_the_dft_tables(segment):
    tables = demos.vibration_tables(segment)
    cos, sin = vibration.dft_tables_q15(segment)
    index = np.outer(np.arange(segment), np.arange(segment // 2)) % segment
    np.testing.assert_array_equal(tables["cos"][index], cos)
    np.testing.assert_array_equal(tables["sin"][index], sin)


@pytest.mark.parametrize(
    "segment,bands,segments_per_window,fault",
    [(256, 16, 4, "bearing_outer"), (64, 4, 2, "imbalance"), (1024, 512, 1, "bearing_inner"), (128, 64, 16, "misalignment")],
)
def test_c_features_equal_the_data_sets(segment, bands, segments_per_window, fault):
    options = vibration.VibrationOptions(segment=segment, bands=bands, segments_per_window=segments_per_window)
    recording = vibration.stream(options, seed=3, seconds=6.0, fault=fault, fault_at_s=3.0, severity=2.0)
    windows = recording.counts.reshape(-1, options.window, 2)
    np.testing.assert_array_equal(demos.host_vibration_features(windows, options), _integer_features(recording.features))


def test_c_features_at_full_scale_and_silence():
    options = vibration.VibrationOptions()
    rng = np.random.default_rng(7)
    extremes = np.stack(
        [
            np.full((options.window, 2), 32767, np.int16),  # constant: all power removed with the mean
            np.where(np.arange(options.window)[:, None] % 2 == 0, -32768, 32767).repeat(2, axis=1).astype(np.int16),
            np.zeros((options.window, 2), np.int16),
            rng.integers(-32768, 32767, (options.window, 2), endpoint=True).astype(np.int16),
        ]
    )
    expected = vibration.window_features(extremes, options.segment, options.bands)
    np.testing.assert_array_equal(demos.host_vibration_features(extremes, options), _integer_features(expected))


def test_log2_q8_matches_at_edges():
    values = [0, 1, 2, 3, 255, 256, 257, 511, 512, 2**31 - 1, 2**31, 2**62 - 1]
    values += np.random.default_rng(0).integers(1, 2**62, 200).tolist()
    lib = demos.vib_library()
    got = [lib.vibf_log2_q8(v) for v in values]
    np.testing.assert_array_equal(got, vibration.log2_q8(np.array(values, np.int64)))


def test_log2_q8_by_hand():
    """Exponent * 256 + (mantissa - 256), the mantissa being the top 9 bits; up to the int64 limit.

    (The Python definition agrees below 2^62; at and above it its exponent
    correction overshoots, e.g. 2^62 gives 16000 there: a power no sensor window reaches.)
    """
    lib = demos.vib_library()
    assert [lib.vibf_log2_q8(v) for v in (1, 256, 384, 2**40 + 2**39, 2**62, 2**63 - 1)] == [0, 2048, 2048 + 128, 40 * 256 + 128, 62 * 256, 62 * 256 + 255]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A vibration autoencoder trained briefly on healthy windows, int8, with its calibrated threshold."""
    from mcuforge.deploy.convert import convert_model, representative_sample
    from mcuforge.spec import parse_spec
    from mcuforge.train import trainer

    with pytest.MonkeyPatch.context() as patch:  # module-scoped: the autouse cache isolation is not set up yet
        patch.setenv("MCUFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        data = yaml.safe_load(open(demos.FIRMWARE_DIR.parent / "specs" / "vibration.yaml"))
        data["data"]["options"].update(SMALL)
        data["train"]["epochs"] = 40
        spec = parse_spec(data)
        dataset = trainer.load_dataset(spec)
        model = trainer.build_model(spec, dataset)
        trainer.fit(model, spec, dataset)
        path = tmp_path_factory.mktemp("vibration") / "model_int8.tflite"
        path.write_bytes(convert_model(model, representative_sample(dataset.x_train, 100, seed=0)))
        options = vibration.VibrationOptions(**data["data"]["options"])
        threshold = demos.calibrate_threshold(path.read_bytes(), _integer_features(dataset.x_val))
        return path, options, threshold


@pytest.mark.slow
def test_bearing_fault_flagged_at_onset_and_never_before(small_model, tmp_path):
    path, options, threshold = small_model
    result = demos.run_vibration(path, options, threshold, seed=5, seconds=16.0, fault="bearing_outer", out_dir=tmp_path)
    recording = vibration.stream(options, 5, 16.0, "bearing_outer", 8.0)
    # features computed on the device, bit for bit the training definition
    np.testing.assert_array_equal(result.features.astype(np.int64), _integer_features(recording.features))
    # scores exactly as TFLM's outputs give them, and alarms exactly where they cross the threshold
    expected_scores = demos.vibration_scores(path.read_bytes(), _integer_features(recording.features))
    np.testing.assert_array_equal(result.scores, expected_scores)
    assert result.alarms == np.flatnonzero(expected_scores > threshold).tolist()
    onset = int(np.argmax(recording.faulty))
    assert onset == 16 and not recording.faulty[:onset].any()  # 8 s at 0.5 s per window
    assert result.first_alarm is not None, result.transcript()
    assert all(window >= onset for window in result.alarms), f"false alarm before the fault:\n{result.transcript()}"
    assert result.first_alarm <= onset + ALARM_WITHIN_WINDOWS, result.transcript()
    assert all(c > 0 for c in result.cycles)
    assert f"first alarm: window {result.first_alarm}" in result.transcript()


def test_c_constants_are_the_data_sets():
    assert demos.VIB_CONSTANTS["WINDOWED_FRACTION_BITS"] == vibration.WINDOWED_FRACTION_BITS
    assert demos.VIB_CONSTANTS["DFT_SHIFT"] == vibration.DFT_SHIFT
    assert demos.VIB_CONSTANTS["LOG2_FRACTION_BITS"] == vibration.LOG2_FRACTION_BITS
    assert demos.VIB_CONSTANTS["AXES"] == len(vibration.AXES)
    assert demos.VIB_CONSTANTS["MAX_SEGMENT"] == max(vibration.VibrationOptions.__dataclass_fields__["segment"].metadata["choices"])


def test_cli_names_the_missing_model(tmp_path):
    from typer.testing import CliRunner

    from mcuforge.cli import app

    missing = tmp_path / "none.tflite"
    outcome = CliRunner().invoke(app, ["demo", "digits", "--model", str(missing), "--count", "3"])
    assert outcome.exit_code != 0
    assert f"model {missing} not found" in str(outcome.exception) and "mcuforge run SPEC" in str(outcome.exception)


SANITIZED_RUN = """
import numpy as np
from mcuforge.firmware import demos
from mcuforge.train.datasets import vibration
for segment, bands, per_window in ((256, 16, 4), (1024, 512, 2), (64, 32, 1)):
    options = vibration.VibrationOptions(segment=segment, bands=bands, segments_per_window=per_window)
    counts = np.random.default_rng(segment).integers(-32768, 32768, (2, options.window, 2)).astype(np.int16)
    got = demos.host_vibration_features(counts, options, lib=demos.vib_library(sanitize=True))
    assert np.array_equal(got, demos.host_vibration_features(counts, options))
print("ok")
"""


def test_sanitizer_build_agrees():
    """ASan + UBSan build at full-scale noise and the largest segment: no report (reports abort), same features."""
    libasan = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0"}
    result = subprocess.run([sys.executable, "-c", SANITIZED_RUN], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_c_status_codes():
    """Each refusal returns its status from vib_features.h's enum."""
    lib = demos.vib_library()
    samples = np.zeros(4096, np.int16)
    table = np.zeros(1024, np.int16)
    out = np.zeros(1024, np.int32)
    i16p = ctypes.POINTER(ctypes.c_int16)
    workspace = demos._VibWorkspace()

    def status(segment, bands, per_window, tables=True):
        pointer = table.ctypes.data_as(i16p) if tables else None
        config = demos._VibConfig(segment, per_window, bands, pointer, pointer, pointer)
        return lib.vibf_window(samples.ctypes.data_as(i16p), ctypes.byref(config), ctypes.byref(workspace), out.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)))

    assert status(256, 16, 4) == 0
    assert status(256, 16, 4, tables=False) == 1
    assert [status(n, 2, 1) for n in (2, 96, 2048)] == [2, 2, 2]
    assert [status(256, b, 1) for b in (0, 3, 256)] == [3, 3, 3]
    assert status(256, 16, 0) == 4
