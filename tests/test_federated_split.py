"""The federated client split: a deterministic, non-IID partition of the training samples."""

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.spec import parse_spec
from mcuforge.train.datasets import load, parse_options
from mcuforge.train.datasets.keywords import speaker_catalog, train_speaker_ids
from mcuforge.train.federated.faults import DROP, OK, STRAGGLE, fate
from mcuforge.train.federated.partition import client_partitions, dirichlet_split


def digits_spec(alpha, clients=10, seed=0):
    return parse_spec({
        "name": "fed",
        "data": {"dataset": "digits", "seed": seed},
        "model": {"arch": "tiny_cnn"},
        "federated": {"clients": clients, "alpha": alpha},
    })


def label_shares(labels, parts, classes=10):
    """Each client's class histogram as shares (rows sum to 1)."""
    counts = np.array([np.bincount(labels[p], minlength=classes) for p in parts], float)
    return counts / counts.sum(axis=1, keepdims=True)


def test_dirichlet_split_is_a_deterministic_partition(tmp_path):
    spec = digits_spec(alpha=0.5)
    dataset = load("digits", {}, 0, tmp_path)
    parts = client_partitions(spec, dataset)
    assert len(parts) == 10 and all(len(p) > 0 for p in parts)
    every = np.concatenate(parts)
    assert len(every) == len(dataset.y_train) and len(np.unique(every)) == len(every)  # each sample on one client
    again = client_partitions(spec, dataset)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other_seed = client_partitions(digits_spec(alpha=0.5, seed=1), load("digits", {}, 1, tmp_path))
    assert any(len(a) != len(b) or not np.array_equal(a, b) for a, b in zip(parts, other_seed))


def test_small_alpha_skews_labels_and_large_alpha_does_not(tmp_path):
    labels = load("digits", {}, 0, tmp_path).y_train
    overall = np.bincount(labels, minlength=10) / len(labels)

    def distance_from_overall(alpha):
        # Total-variation distance of each client's label mix from the whole training set's, averaged.
        shares = label_shares(labels, dirichlet_split(labels, 10, alpha, seed=0))
        return float(np.mean(0.5 * np.abs(shares - overall).sum(axis=1)))

    assert distance_from_overall(0.1) > 0.6  # a few classes per client
    assert distance_from_overall(1000.0) < 0.1  # nearly IID


def test_every_client_gets_a_sample_even_when_the_draw_leaves_one_empty():
    labels = np.repeat(np.arange(3), 4)
    parts = dirichlet_split(labels, clients=10, alpha=0.01, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(12))
    assert min(len(p) for p in parts) >= 1


def test_more_clients_than_samples_is_an_error():
    with pytest.raises(MCUForgeError, match="federated.clients"):
        dirichlet_split(np.arange(5), clients=6, alpha=1.0, seed=0)


def test_keywords_clients_are_the_training_speakers():
    options = parse_options("keywords", {"speakers": 20, "repetitions": 2})
    speakers = len(speaker_catalog(options, 0)["train"])
    per_speaker = 2 * len(options.class_names)  # every speaker says every class `repetitions` times
    ids = train_speaker_ids(options, 0, speakers * per_speaker + 3)  # plus 3 of the user's own takes
    assert np.array_equal(np.bincount(ids), [per_speaker] * speakers + [3])
    assert np.all(np.diff(ids) >= 0)  # load() concatenates speaker after speaker


def test_injected_faults_hit_the_requested_share_and_repeat_with_the_seed():
    fates = [fate(0, r, c, dropout=0.3, stragglers=0.2) for r in range(1, 41) for c in range(50)]
    assert abs(fates.count(DROP) / len(fates) - 0.3) < 0.03
    assert abs(fates.count(STRAGGLE) / len(fates) - 0.2) < 0.03
    assert fates == [fate(0, r, c, dropout=0.3, stragglers=0.2) for r in range(1, 41) for c in range(50)]
    assert {fate(0, 1, c, 0.0, 0.0) for c in range(50)} == {OK}
