"""Personalization: per-client held-out splits, head-only fine-tuning, and the gain it brings a skewed client."""

from __future__ import annotations

import numpy as np
import pytest

from mcuforge.results import ClientGain, PersonalizationResult
from mcuforge.train.federated.personalize import classifier_head, fine_tune_head, personalize, split_clients


def test_split_clients_is_a_deterministic_partition_of_each_client():
    partitions = [np.arange(0, 10), np.arange(10, 13), np.array([13])]
    first = split_clients(partitions, 0.3, seed=5)
    assert [list(s.held_out) for s in first] == [list(s.held_out) for s in split_clients(partitions, 0.3, seed=5)]
    assert [list(s.held_out) for s in first] != [list(s.held_out) for s in split_clients(partitions, 0.3, seed=6)]
    for split, indices in zip(first, partitions):
        assert not set(split.train) & set(split.held_out)
        assert sorted([*split.train, *split.held_out]) == list(indices)
    # 30 % of 10 is 3; of 3 it rounds to 1; a one-sample client keeps its sample to train on.
    assert [len(s.held_out) for s in first] == [3, 1, 0]


def _task(seed: int, samples: int, shift: int):
    """Four separable classes (one hot-ish feature each); a client with `shift` labels class c as (c + shift) % 4."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, samples)
    x = (np.eye(4)[truth] * 3.0 + rng.normal(0.0, 0.3, (samples, 4))).astype(np.float32)
    return x, ((truth + shift) % 4).astype(np.int64)


def _global_model():
    """A model that labels like the fleet (class = the largest feature), set by hand rather than trained."""
    import tf_keras

    inputs = tf_keras.Input((4,))
    hidden = tf_keras.layers.Dense(8, activation="relu", name="features")(inputs)
    outputs = tf_keras.layers.Softmax()(tf_keras.layers.Dense(4, name="logits")(hidden))
    model = tf_keras.Model(inputs, outputs)
    model.get_layer("features").set_weights([np.hstack([np.eye(4), -np.eye(4)]).astype(np.float32), np.zeros(8, np.float32)])
    model.get_layer("logits").set_weights([np.vstack([2 * np.eye(4), np.zeros((4, 4))]).astype(np.float32), np.zeros(4, np.float32)])
    return model


def test_fine_tuning_moves_only_the_head_and_fits_a_client_that_labels_differently():
    model = _global_model()
    before = [w.copy() for w in model.get_weights()]
    x_own, y_own = _task(2, 200, shift=1)  # this device names every class one further on
    personal = fine_tune_head(model, x_own, y_own, steps=60, learning_rate=0.05, batch_size=32, seed=0)

    head = classifier_head(personal)
    assert head.name == "logits"
    for layer in personal.layers:
        changed = any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()))
        assert changed == (layer is head), layer.name
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "the global model must stay as it was"

    x_test, y_test = _task(3, 200, shift=1)
    global_accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test)
    personal_accuracy = np.mean(np.argmax(personal.predict(x_test, verbose=0), -1) == y_test)
    # The global model predicts the fleet's labels, all wrong for this client; the re-fitted head learns its mapping.
    assert global_accuracy < 0.1 and personal_accuracy > 0.9


def test_personalize_scores_each_client_on_its_own_held_out_samples(tmp_path):
    model = _global_model()
    x_a, y_a = _task(4, 60, shift=0)
    x_b, y_b = _task(5, 60, shift=2)
    x_train, y_train = np.concatenate([x_a, x_b]), np.concatenate([y_a, y_b])
    splits = split_clients([np.arange(60), np.arange(60, 120)], 0.25, seed=0)
    gains = personalize(model, x_train, y_train, splits, steps=60, learning_rate=0.05, batch_size=16, seed=0)

    assert [g.client for g in gains] == [0, 1]
    assert [(g.train_samples, g.held_out_samples) for g in gains] == [(45, 15), (45, 15)]
    for gain, split in zip(gains, splits):
        held = split.held_out
        expected = np.mean(np.argmax(model.predict(x_train[held], verbose=0), -1) == y_train[held])
        assert gain.global_accuracy == pytest.approx(expected)
    # Client 0 labels like the fleet: nothing to gain. Client 1 labels every class two further on: all to gain.
    assert gains[0].global_accuracy > 0.9 and abs(gains[0].gain) <= 0.1
    assert gains[1].global_accuracy < 0.1 and gains[1].gain > 0.8

    result = PersonalizationResult(steps=60, learning_rate=0.05, held_out_fraction=0.25, clients=gains)
    result.save(tmp_path)
    loaded = PersonalizationResult.load(tmp_path)
    assert loaded == result and isinstance(loaded.clients[0], ClientGain)
    assert loaded.mean_gain == pytest.approx((gains[0].gain + gains[1].gain) / 2)


def test_report_shows_each_clients_gain_and_the_plot(tmp_path):
    import re

    from mcuforge.config import parse_dataclass
    from mcuforge.html_report import write_html_report
    from mcuforge.spec import Spec
    from mcuforge.train.federated.personalize import plot_gains

    spec = parse_dataclass(Spec, {
        "name": "fedreport", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"},
        "federated": {"clients": 2, "personalization": {"steps": 7, "held_out": 0.25}},
    })
    gains = [ClientGain(0, 30, 10, 0.5, 0.8), ClientGain(1, 20, 7, 0.75, 0.625)]
    directory = spec.layout(tmp_path).stage("federate")
    directory.mkdir(parents=True)
    result = PersonalizationResult(steps=7, learning_rate=0.01, held_out_fraction=0.25, clients=gains)
    result.save(directory)
    plot_gains(gains, directory / result.plot)

    page = write_html_report(spec, tmp_path).read_text()
    section = re.search(r'<section id="personalization">(.*?)</section>', page).group(1)
    assert "Mean gain +8.8 points over 2 clients" in section  # (30 - 12.5) / 2
    assert "<td>0</td><td>30</td><td>10</td><td>0.5000</td><td>0.8000</td><td>+30.0</td>" in section
    assert "<td>1</td><td>20</td><td>7</td><td>0.7500</td><td>0.6250</td><td>-12.5</td>" in section
    assert section.count('src="data:image/png;base64,') == 1
