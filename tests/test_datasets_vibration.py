"""The vibration data set: fault physics, integer features, splits and the fault stream."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import hilbert

from mcuforge.errors import MCUForgeError
from mcuforge.spec import load_spec
from mcuforge.train import datasets
from mcuforge.train.datasets import vibration

REPO = Path(__file__).resolve().parent.parent
FS = 2048
SHAFT_HZ = 25.0
# SKF 6205 (the CWRU rig's drive-end bearing): 9 balls of 7.94 mm on a 39.04 mm pitch circle, 0 deg contact.
RATIO = 7.94 / 39.04
BPFO = 9 / 2 * SHAFT_HZ * (1 - RATIO)  # 89.62 Hz
BPFI = 9 / 2 * SHAFT_HZ * (1 + RATIO)  # 135.38 Hz
BSF = 39.04 / (2 * 7.94) * SHAFT_HZ * (1 - RATIO**2)  # 58.92 Hz
FTF = SHAFT_HZ / 2 * (1 - RATIO)  # 9.96 Hz

BANDS = 64  # 16 Hz per band at 2048 Hz: fine enough to locate each fault's band by hand
SMALL = {"train_windows": 300, "val_windows": 20, "test_normal_windows": 100, "test_faulty_windows": 250, "bands": BANDS}


def steady_machine(seed=1):
    """A normal machine at exactly 25 Hz, so spectral lines are sharp."""
    machine = vibration.random_machine(vibration.VibrationOptions(), np.random.default_rng(seed))
    return dataclasses.replace(machine, shaft_hz=SHAFT_HZ, speed_variation=0.0)


def amplitude_at(signal, hz):
    """Peak Hann-windowed spectral magnitude within +-2 bins of `hz`."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    k = int(round(hz * len(signal) / FS))
    return spectrum[k - 2 : k + 3].max()


def envelope_spectrum(signal, centre_hz, half_width_hz=150):
    """Classic bearing diagnosis: band-pass around the resonance, Hilbert envelope, spectrum."""
    freqs = np.fft.rfftfreq(len(signal), 1 / FS)
    spectrum = np.fft.rfft(signal)
    spectrum[np.abs(freqs - centre_hz) > half_width_hz] = 0
    envelope = np.abs(hilbert(np.fft.irfft(spectrum, len(signal))))
    return freqs, np.abs(np.fft.rfft((envelope - envelope.mean()) * np.hanning(len(signal))))


def test_bearing_frequencies_match_the_cwru_table():
    # CWRU bearing data center, 6205-2RS JEM SKF, multiples of running speed:
    # inner 5.4152, outer 3.5848, cage 0.39828, rolling element 4.7135 (= 2 x BSF).
    freqs = vibration.BEARING.frequencies(1.0)
    assert freqs["bpfi"] == pytest.approx(5.4152, abs=2e-4)
    assert freqs["bpfo"] == pytest.approx(3.5848, abs=2e-4)
    assert freqs["ftf"] == pytest.approx(0.39828, abs=1e-4)
    assert 2 * freqs["bsf"] == pytest.approx(4.7135, abs=2e-4)


@pytest.mark.parametrize(
    "fault, defect_hz, modulation_hz",
    [("bearing_outer", BPFO, None), ("bearing_inner", BPFI, SHAFT_HZ), ("bearing_ball", 2 * BSF, FTF)],
)
def test_bearing_faults_appear_at_their_characteristic_frequency(fault, defect_hz, modulation_hz):
    machine = steady_machine()
    n = 8 * FS  # 0.125 Hz resolution
    normal = vibration.simulate(machine, n, FS, np.random.default_rng(2))[:, 0]
    faulty = vibration.simulate(machine, n, FS, np.random.default_rng(2), fault)[:, 0]
    # A line at the defect frequency where the healthy machine has none.
    assert amplitude_at(faulty, defect_hz) > 10 * amplitude_at(normal, defect_hz)
    # The envelope of the ringing resonance repeats at the defect frequency ...
    freqs, env = envelope_spectrum(faulty, machine.resonance_hz)
    k = int(round(defect_hz * n / FS))
    assert env[k - 2 : k + 3].max() > 10 * np.median(env[(freqs > 5) & (freqs < 300)])
    if modulation_hz is None:  # outer race: stationary defect, the defect frequency dominates the envelope
        low = (freqs > 5) & (freqs < 300)
        assert freqs[low][np.argmax(env[low])] == pytest.approx(defect_hz, abs=0.5)
    else:  # ... and is amplitude-modulated as the defect passes through the load zone
        k = int(round(modulation_hz * n / FS))
        assert env[k - 2 : k + 3].max() > 10 * np.median(env[(freqs > 5) & (freqs < 300)])


def test_imbalance_raises_1x_radial_and_misalignment_raises_2x_axial():
    machine = steady_machine()
    n = 4 * FS
    normal = vibration.simulate(machine, n, FS, np.random.default_rng(3))
    imbalance = vibration.simulate(machine, n, FS, np.random.default_rng(3), "imbalance")
    misaligned = vibration.simulate(machine, n, FS, np.random.default_rng(3), "misalignment")
    assert amplitude_at(imbalance[:, 0], SHAFT_HZ) > 3 * amplitude_at(normal[:, 0], SHAFT_HZ)
    assert amplitude_at(imbalance[:, 1], 2 * SHAFT_HZ) == pytest.approx(amplitude_at(normal[:, 1], 2 * SHAFT_HZ), rel=0.1)
    assert amplitude_at(misaligned[:, 1], 2 * SHAFT_HZ) > 5 * amplitude_at(normal[:, 1], 2 * SHAFT_HZ)
    assert amplitude_at(misaligned[:, 0], SHAFT_HZ) == pytest.approx(amplitude_at(normal[:, 0], SHAFT_HZ), rel=0.1)


def test_imbalance_grows_with_the_square_of_speed():
    machine = steady_machine()
    slow = vibration.simulate(dataclasses.replace(machine, shaft_hz=20.0), 4 * FS, FS, np.random.default_rng(4), "imbalance")
    fast = vibration.simulate(dataclasses.replace(machine, shaft_hz=30.0), 4 * FS, FS, np.random.default_rng(4), "imbalance")
    ratio = amplitude_at(fast[:, 0], 30.0) / amplitude_at(slow[:, 0], 20.0)
    assert ratio == pytest.approx((30 / 20) ** 2, rel=0.05)


@pytest.mark.parametrize(
    "power, expected",
    [(0, 0), (1, 0), (2, 256), (3, 256 + 128), (256, 8 * 256), (2**40, 40 * 256), (2**50 - 1, 49 * 256 + 255)],
)
def test_log2_q8_by_hand(power, expected):
    assert vibration.log2_q8(np.array([power], dtype=np.int64))[0] == expected


def test_integer_features_agree_with_a_float_fft():
    rng = np.random.default_rng(5)
    counts = vibration.to_counts(vibration.simulate(steady_machine(), 1024, FS, rng, "bearing_inner"))
    features = vibration.window_features(counts, segment=256, bands=BANDS)
    assert features.shape == (2 * BANDS,) and features.dtype == np.float32
    segments = counts.astype(np.float64).T.reshape(2, 4, 256)
    segments -= segments.mean(axis=-1, keepdims=True)
    window = 0.5 * (1 - np.cos(2 * np.pi * np.arange(256) / 256))
    power = (np.abs(np.fft.rfft(segments * window, axis=-1)[..., :128]) ** 2).sum(axis=1)
    # The DFT is scaled by 2^15 (tables) / 2^13 (DFT_SHIFT) = 4 in amplitude, 16 in power.
    log2_power = np.log2(16 * power.reshape(2, BANDS, 2).sum(axis=-1)).ravel()
    # features are log2(power) / 16; the piecewise-linear log2 is at most 0.086 below the true one,
    # its truncated Q8 mantissa at most 1/256 more; integer rounding adds a few thousandths.
    error = features * 16 - log2_power
    assert error.max() < 0.005 and error.min() > -0.086 - 1 / 256 - 0.005


def integer_reference(counts, segment, bands):
    """The documented feature arithmetic with Python integers, written out independently."""
    shift = segment.bit_length() - 1 + 15 - 4
    hann = [round(32767 * 0.5 * (1 - math.cos(2 * math.pi * n / segment))) for n in range(segment)]
    out = []
    for axis in range(counts.shape[1]):
        power = [0] * (segment // 2)
        for start in range(0, len(counts), segment):
            x = [int(v) for v in counts[start : start + segment, axis]]
            total = sum(x)
            xw = [((segment * v - total) * w + (1 << (shift - 1))) >> shift for v, w in zip(x, hann)]
            xw_arr = np.array(xw, dtype=np.int64)
            for k in range(segment // 2):
                angle = 2 * np.pi * k * np.arange(segment) / segment
                re = int(xw_arr @ np.round(32767 * np.cos(angle)).astype(np.int64))  # int64: exact below 2^63
                im = int(xw_arr @ np.round(32767 * np.sin(angle)).astype(np.int64))
                re, im = (re + (1 << 16)) >> 17, (im + (1 << 16)) >> 17
                power[k] += re * re + im * im
        width = segment // 2 // bands
        for b in range(bands):
            p = sum(power[b * width : (b + 1) * width])
            e = p.bit_length() - 1
            out.append(0 if p == 0 else e * 256 + ((p << 8) >> e) - 256)
    return np.array(out) / 4096.0


@pytest.mark.parametrize("case", ["machine", "full_scale"])
def test_features_are_exactly_the_documented_integer_arithmetic(case):
    if case == "machine":
        segment, bands = 256, 64
        counts = vibration.to_counts(vibration.simulate(steady_machine(), 512, FS, np.random.default_rng(6), "misalignment"))
    else:  # the largest powers possible: a full-scale square wave, 16 segments of 1024, wide bands
        segment, bands = 1024, 4
        wave = np.where(np.arange(16 * 1024) % 4 < 2, 32767, -32768).astype(np.int16)
        counts = np.stack([wave, wave[::-1]], axis=1)
    features = vibration.window_features(counts, segment, bands)
    np.testing.assert_array_equal(features, integer_reference(counts, segment, bands).astype(np.float32))


def test_features_reject_float_input_and_ragged_windows():
    with pytest.raises(MCUForgeError, match="int16"):
        vibration.window_features(np.zeros((1024, 2)), 256, BANDS)
    with pytest.raises(MCUForgeError, match="multiple of segment=256"):
        vibration.window_features(np.zeros((1000, 2), dtype=np.int16), 256, BANDS)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return datasets.load("vibration", SMALL, 0, tmp_path_factory.mktemp("cache"))


def test_shapes_labels_and_balanced_faults(small):
    assert small.task == datasets.ANOMALY and small.class_names == ["normal", "anomalous"]
    assert small.x_train.shape == (300, 2 * BANDS) and small.x_train.dtype == np.float32
    assert small.x_val.shape == (20, 2 * BANDS) and small.x_test.shape == (350, 2 * BANDS)
    assert not small.y_train.any() and not small.y_val.any()
    assert small.y_test.dtype == np.int64 and int(small.y_test.sum()) == 250
    layout = small.notes["test_layout"]
    assert [block["condition"] for block in layout] == ["normal", *vibration.FAULTS]
    assert [block["count"] for block in layout] == [100, 50, 50, 50, 50, 50]
    for block in layout:
        labels = small.y_test[block["start"] : block["start"] + block["count"]]
        assert set(labels) == {int(block["condition"] != "normal")}


def test_chosen_faults_share_the_faulty_windows(tmp_path):
    options = {**SMALL, "train_windows": 10, "val_windows": 10, "test_normal_windows": 10, "test_faulty_windows": 11,
               "faults": ["bearing_outer", "imbalance"]}
    layout = datasets.load("vibration", options, 0, tmp_path).notes["test_layout"]
    assert [(b["condition"], b["start"], b["count"]) for b in layout] == [
        ("normal", 0, 10), ("bearing_outer", 10, 6), ("imbalance", 16, 5)
    ]


def test_same_seed_same_arrays_other_seed_other_arrays(small, tmp_path):
    again = datasets.load("vibration", SMALL, 0, tmp_path)
    for split in ("x_train", "x_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(small, split), getattr(again, split))
    assert not np.array_equal(datasets.load("vibration", SMALL, 1, tmp_path).x_train, small.x_train)


# Each fault's signature in the feature vector, located by hand: 16 Hz bands, 1x (20-30 Hz) in
# radial band 1; 2x (40-60 Hz) in axial bands 2-3; the housing resonance (550-850 Hz) in radial
# bands 34-53, where bearing impacts ring.
SIGNATURES = {
    "imbalance": lambda x: x[:, 1],
    "misalignment": lambda x: x[:, BANDS + 2 : BANDS + 4].max(axis=1),
    "bearing_outer": lambda x: x[:, 34:54].mean(axis=1),
    "bearing_inner": lambda x: x[:, 34:54].mean(axis=1),
    "bearing_ball": lambda x: x[:, 34:54].mean(axis=1),
}


@pytest.mark.parametrize("fault", vibration.FAULTS)
def test_faults_raise_their_signature_and_training_holds_none(small, fault):
    block = next(b for b in small.notes["test_layout"] if b["condition"] == fault)
    signature = SIGNATURES[fault]
    faulty = signature(small.x_test[block["start"] : block["start"] + block["count"]])
    normal = signature(small.x_test[: small.notes["test_layout"][0]["count"]])
    threshold = np.median(faulty)
    assert np.mean(normal > threshold) < 0.02
    # Were faulty windows like the test's mixed into training, about half of them would exceed the median.
    assert np.mean(signature(small.x_train) > threshold) < 0.01
    assert np.mean(signature(small.x_val) > threshold) < 0.05


def test_severity_zero_faults_are_indistinguishable_from_normal(tmp_path):
    # The labels carry no information beyond the injected physics: with nothing injected, no signature rises.
    from sklearn.metrics import roc_auc_score

    data = datasets.load("vibration", {**SMALL, "severity_min": 0.0, "severity_max": 0.0}, 0, tmp_path)
    normal = data.x_test[: data.notes["test_layout"][0]["count"]]
    for block in data.notes["test_layout"][1:]:
        faulty = data.x_test[block["start"] : block["start"] + block["count"]]
        signature = SIGNATURES[block["condition"]]
        scores = np.concatenate([signature(normal), signature(faulty)])
        labels = np.concatenate([np.zeros(len(normal)), np.ones(len(faulty))])
        assert 0.3 < roc_auc_score(labels, scores) < 0.7, block["condition"]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"bands": 256}, "bands: expected at most segment/2 = 128"),
        ({"shaft_hz_min": 40.0, "shaft_hz_max": 30.0}, "shaft_hz_max: expected >= shaft_hz_min"),
        ({"sample_rate_hz": 1024}, "sample_rate_hz: expected > 1700"),
        ({"faults": ["rust"]}, "faults: expected one of imbalance"),
        ({"faults": []}, "faults: expected at least one"),
        ({"faults": ["imbalance", "imbalance"]}, "faults: expected each fault once"),
        ({"segment": 100}, "segment: expected one of 64, 128"),
        ({"severity_min": 2.0, "severity_max": 1.0}, "severity_max: expected >= severity_min"),
        ({"windows": 10}, "windows: unknown key"),
    ],
)
def test_bad_options_name_the_field(options, match):
    with pytest.raises(MCUForgeError, match=match):
        datasets.parse_options("vibration", options)


def test_stream_fault_onset():
    options = vibration.VibrationOptions(bands=BANDS)
    stream = vibration.stream(options, seed=0, seconds=20, fault="bearing_outer", fault_at_s=10.2)
    window_s = 1024 / FS
    assert stream.features.shape == (40, 2 * BANDS) and stream.counts.shape == (40 * 1024, 2)
    onset_window = int(10.2 // window_s)  # window 20 covers 10.0-10.5 s
    assert not stream.faulty[:onset_window].any() and stream.faulty[onset_window:].all()
    assert stream.window_start_s[onset_window] == pytest.approx(10.0)
    # Physics, independently of the labels: impacts make the radial signal impulsive (kurtosis > 3).
    radial = stream.counts[:, 0].astype(np.float64).reshape(40, 1024)
    centred = radial - radial.mean(axis=1, keepdims=True)
    kurtosis = (centred**4).mean(axis=1) / (centred**2).mean(axis=1) ** 2
    assert kurtosis[:onset_window].max() < 3.0 < kurtosis[onset_window + 1 :].min()
    np.testing.assert_array_equal(
        stream.features, vibration.window_features(stream.counts.reshape(40, 1024, 2), 256, BANDS)
    )


@pytest.mark.parametrize("fault, axis, low_hz, high_hz", [("imbalance", 0, 18, 33), ("misalignment", 1, 36, 66)])
def test_stream_harmonic_faults_start_at_onset(fault, axis, low_hz, high_hz):
    # Amplitude in the 1x (radial) or 2x (axial) range of shaft speeds 20-30 Hz, +-2 %, per 0.5 s window.
    stream = vibration.stream(vibration.VibrationOptions(), seed=1, seconds=10, fault=fault, fault_at_s=5.0)
    signal = stream.counts[:, axis].astype(np.float64).reshape(20, 1024)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(1024), axis=1))
    freqs = np.fft.rfftfreq(1024, 1 / FS)
    level = spectrum[:, (freqs >= low_hz) & (freqs <= high_hz)].max(axis=1)
    assert not stream.faulty[:10].any() and stream.faulty[10:].all()
    assert level[10:].min() > 3 * level[:10].max()


def test_stream_arguments_are_checked():
    options = vibration.VibrationOptions()
    with pytest.raises(MCUForgeError, match="fault: expected one of"):
        vibration.stream(options, 0, 10, "wobble", 5)
    with pytest.raises(MCUForgeError, match="fault_at_s: expected a time between 0 and seconds=10"):
        vibration.stream(options, 0, 10, "imbalance", 12)
    with pytest.raises(MCUForgeError, match="seconds: expected at least one window"):
        vibration.stream(options, 0, 0.1, "imbalance", 0)


@pytest.mark.slow
def test_the_example_spec_trains_to_auc_095(tmp_path):
    from mcuforge.train import trainer

    spec = load_spec(REPO / "specs" / "vibration.yaml")
    assert spec.model.arch == "autoencoder"
    result = trainer.train(spec, tmp_path / "train")
    assert result.metrics["test"]["auc"] >= 0.95


def test_example_spec_is_valid():
    spec = load_spec(REPO / "specs" / "vibration.yaml")
    assert spec.data.dataset == "vibration" and spec.model.arch == "autoencoder"
