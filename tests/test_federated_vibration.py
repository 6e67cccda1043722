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

    (trained, count), *_ = client_fits(spec, 1, 1, initial)
    assert count == len(own) == 10
    assert error(trained) < 0.1 * error(initial)
