"""Federated vibration: one client per machine of the data set's fleet (its own shaft-speed range and load),
each training the anomaly detector on its own healthy windows."""

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.spec import parse_spec
from mcuforge.train.datasets import load, parse_options
from mcuforge.train.federated.partition import client_partitions

FLEET = {"machines": 4, "shaft_hz_min": 25.0, "shaft_hz_max": 45.0, "speed_variation": 0.0, "segments_per_window": 8,
         "train_windows": 40, "val_windows": 10, "test_normal_windows": 10, "test_faulty_windows": 10}


def vibration_spec(seed=0, **options):
    return parse_spec({
        "name": "fedvib",
        "data": {"dataset": "vibration", "seed": seed, "options": {**FLEET, **options}},
        "model": {"arch": "autoencoder"},
        "federated": {},
    })


def radial_spectrum(window, fs=2048, pad=16):
    """Hann-windowed, zero-padded magnitude spectrum of a window's radial axis: (frequencies, magnitudes)."""
    x = window[:, 0].astype(np.float64)
    return np.fft.rfftfreq(pad * len(x), 1 / fs), np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), pad * len(x)))


def shaft_hz(window):
    """The shaft speed read off the signal: the strongest line between 15 and 48 Hz is the 1x imbalance."""
    freqs, magnitude = radial_spectrum(window)
    band = (freqs > 15) & (freqs < 48)
    return float(freqs[band][np.argmax(magnitude[band])])


def resonance(window, fs=2048):
    """(Frequency, rms) of the housing resonance the broadband forces ring: the Welch peak between 450 and 950 Hz."""
    from scipy.signal import welch

    freqs, power = welch(window[:, 0].astype(np.float64), fs, nperseg=256)
    band = (freqs > 450) & (freqs < 950)
    return float(freqs[band][np.argmax(power[band])]), float(np.sqrt(power[band].sum()))


def test_vibration_clients_are_the_machines_each_holding_one_machines_windows(tmp_path):
    from mcuforge.train.datasets.vibration import train_counts, window_features

    spec = vibration_spec()
    options = parse_options("vibration", spec.data.options)
    dataset = load("vibration", spec.data.options, 0, tmp_path)
    parts = client_partitions(spec, dataset)
    assert len(parts) == 4
    assert sorted(np.concatenate(parts).tolist()) == list(range(40))  # a partition of the training windows
    counts = train_counts(options, 0)
    assert np.array_equal(window_features(counts, 256, 16), dataset.x_train)  # the dataset's windows, as recorded
    for client, part in enumerate(parts):
        # Read off the signals, not the loader's bookkeeping: each client's shaft speeds lie in one
        # 5 Hz slice of 25-45 Hz (one machine's range), ...
        speeds = [shaft_hz(counts[i]) for i in part]
        low = 25.0 + 5.0 * client
        assert all(low - 0.3 <= s <= low + 5.3 for s in speeds), (client, speeds)
        # ... and every window rings the same housing resonance with the same broadband strength
        # (that machine's resonance and load; the population spreads them over 550-850 Hz and 3x).
        rings = [resonance(counts[i]) for i in part]
        assert np.ptp([hz for hz, _ in rings]) <= 40.0, (client, rings)
        strengths = [rms for _, rms in rings]
        assert max(strengths) / min(strengths) <= 1.3, (client, strengths)


def test_the_vibration_split_and_fleet_repeat_with_the_seed_and_change_with_it(tmp_path):
    spec = vibration_spec()
    first = load("vibration", spec.data.options, 0, tmp_path)
    again = load("vibration", spec.data.options, 0, tmp_path)
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.x_test, again.x_test)
    assert all(np.array_equal(a, b) for a, b in zip(client_partitions(spec, first), client_partitions(spec, again)))
    other = load("vibration", spec.data.options, 1, tmp_path)
    assert not np.array_equal(first.x_train, other.x_train)


def test_federated_vibration_without_a_fleet_names_the_option(tmp_path):
    spec = vibration_spec(machines=0)
    with pytest.raises(MCUForgeError, match="data.options.machines: .*vibration fleet .*set machines"):
        client_partitions(spec, load("vibration", spec.data.options, 0, tmp_path))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"machines": 41}, r"data.options.machines: expected at most train_windows \(40\)"),
        ({"load_min": 0.8, "load_max": 0.5}, r"data.options.load_max: expected >= load_min \(0.8\)\. Received: 0.5"),
    ],
)
def test_a_fleet_the_data_set_cannot_hold_names_the_option(options, message):
    with pytest.raises(MCUForgeError, match=message):
        parse_options("vibration", {**FLEET, **options})


def test_a_machine_trains_the_autoencoder_to_reconstruct_its_own_windows(tmp_path):
    from federated_oracle import client_fits

    from mcuforge.train.trainer import build_model, load_dataset

    spec = parse_spec({
        "name": "fedvib",
        "data": {"dataset": "vibration", "seed": 0, "options": FLEET},
        "model": {"arch": "autoencoder", "width": 0.25, "options": {"hidden_layers": 1}},
        "train": {"batch_size": 8, "learning_rate": 0.01, "seed": 0},
        "federated": {"local_epochs": 40},
    })
    dataset = load_dataset(spec)
    model = build_model(spec, dataset)
    initial = model.get_weights()
    own = dataset.x_train[client_partitions(spec, dataset)[0]]

    def error(weights):  # mean squared reconstruction error, computed here from the model's outputs
        model.set_weights(weights)
        return float(np.mean((model.predict(own, verbose=0).astype(np.float64) - own) ** 2))

    (trained, count), *_ = client_fits(spec, 1, 1, model)
    assert count == len(own) == 10
    assert error(trained) < 0.1 * error(initial)


STRAGGLER_SEED, STRAGGLERS = 0, 0.34  # seed 0 makes client 0 (of 3) the straggler of round 1: checked below
ROUND_TIMEOUT = 8.0  # above two tiny fits (a client process loads its data before round 1: apps.started_device)


@pytest.mark.slow
def test_a_straggler_past_the_round_timeout_is_left_out_and_the_round_aggregates_the_others():
    """End to end on a three-machine fleet: the round closes at round_timeout with the two clients that answered.

    (The straggler sleeps past the deadline: its reply is left out, though the simulation still waits for it
    before shutting down.)
    """
    import json
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import yaml
    from federated_oracle import client_fits, fedavg

    from mcuforge.train.federated.faults import STRAGGLE, fate
    from mcuforge.train.trainer import build_model, load_dataset, load_model

    late = {c for c in range(3) if fate(STRAGGLER_SEED, 1, c, 0.0, STRAGGLERS) == STRAGGLE}
    assert late == {0}
    fleet = {**FLEET, "machines": 3, "train_windows": 30, "test_normal_windows": 20, "test_faulty_windows": 20}
    spec = {
        "name": "fedlate",
        "data": {"dataset": "vibration", "seed": 0, "options": fleet},
        "model": {"arch": "autoencoder", "width": 0.25, "options": {"hidden_layers": 1}},
        "train": {"batch_size": 8, "learning_rate": 0.01, "seed": STRAGGLER_SEED},
        "deploy": {"representative_samples": 20},
        "compress": {"steps": []},
        "federated": {"rounds": 1, "min_clients": 2, "stragglers": STRAGGLERS, "straggler_seconds": ROUND_TIMEOUT + 4,
                      "round_timeout": ROUND_TIMEOUT},
    }
    # Ray's socket paths live under the build root and must stay short: not under pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="mf", dir="/tmp")) / "build"
    root.mkdir()
    try:
        (root / "fedlate.yaml").write_text(yaml.safe_dump(spec))
        ran = subprocess.run(
            [str(Path(sys.executable).parent / "mcuforge"), "federate", str(root / "fedlate.yaml"), "--root", str(root)],
            capture_output=True, text=True, timeout=900,
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        out = root / "fedlate" / "federate"
        (record,) = json.loads((out / "rounds.json").read_text())
        federated = load_model(out / "model.h5").get_weights()
        metrics = json.loads((out / "metrics.json").read_text())
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    assert record["sampled"] == 3 and record["answered"] == 2 and record["failed"] == 0
    assert record["clients"] == [1, 2] and record["aggregated"]
    assert 0.0 <= record["test_accuracy"] <= 1.0 and 0.0 <= metrics["federated"]["int8_test_auc"] <= 1.0  # ROC AUCs

    parsed = parse_spec({**spec, "federated": {**spec["federated"], "stragglers": 0.0}})
    start = build_model(parsed, load_dataset(parsed))
    answers = client_fits(parsed, 3, 1, start)[1:]  # machines 1 and 2
    expected = fedavg(answers, start)
    peak = max(float(np.max(np.abs(w))) for w in expected)
    # The server averages in float32 (a difference, a weighted sum of two, an addition): a few float32 roundings.
    assert max(float(np.max(np.abs(f - e))) for f, e in zip(federated, expected)) <= 4 * float(np.finfo(np.float32).eps) * peak
