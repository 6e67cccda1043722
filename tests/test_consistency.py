"""Consistency training (`train.consistency_weight`): the loss, the pairing of views, and that 0 changes nothing."""

import dataclasses

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import entropy

from mcuforge.errors import MCUForgeError
from mcuforge.spec import parse_spec
from mcuforge.train import consistency, datasets, trainer
from mcuforge.train.datasets import keywords

LOGITS = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [-3.0, 1.0, 4.0], [1.0, 2.0, 3.0]])


def numpy_symmetric_kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of (KL(p‖q) + KL(q‖p)) / 2, by scipy's relative entropy."""
    return float(np.mean([(entropy(a, b) + entropy(b, a)) / 2 for a, b in zip(p, q)]))


def test_symmetric_kl_matches_scipy_on_fixed_logits():
    p, q = softmax(LOGITS[:2], axis=1), softmax(LOGITS[2:], axis=1)
    assert float(consistency.symmetric_kl(p.astype(np.float32), q.astype(np.float32))) == pytest.approx(
        numpy_symmetric_kl(p, q), rel=1e-5
    )
    assert float(consistency.symmetric_kl(p, p)) == 0.0


def test_train_step_descends_cross_entropy_plus_weighted_divergence():
    """One SGD step of a softmax layer moves its weights by minus the gradient of CE + λ·KL, taken by finite differences in numpy."""
    import tf_keras

    weight, rate = 2.5, 0.1
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)), np.array([0, 2, 0, 1])  # rows 0, 1 are the first views of rows 2, 3
    kernel = rng.normal(size=(3, 3)) * 0.5

    def loss(w: np.ndarray) -> float:
        probabilities = softmax(x @ w, axis=1)
        cross_entropy = -np.mean(np.log(probabilities[np.arange(4), y]))
        return cross_entropy + weight * numpy_symmetric_kl(probabilities[:2], probabilities[2:])

    step = 1e-6
    gradient = np.zeros_like(kernel)
    for index in np.ndindex(kernel.shape):
        delta = np.zeros_like(kernel)
        delta[index] = step
        gradient[index] = (loss(kernel + delta) - loss(kernel - delta)) / (2 * step)

    model = tf_keras.Sequential([tf_keras.layers.Dense(3, activation="softmax", use_bias=False, input_shape=(3,))])
    model.set_weights([kernel.astype(np.float32)])
    wrapped = consistency.consistency_model(model, weight)
    wrapped.compile(optimizer=tf_keras.optimizers.SGD(rate), loss="sparse_categorical_crossentropy")
    logs = wrapped.train_on_batch(x.astype(np.float32), y, return_dict=True)
    probabilities = softmax(x @ kernel, axis=1)
    assert logs["consistency"] == pytest.approx(numpy_symmetric_kl(probabilities[:2], probabilities[2:]), rel=1e-4)
    np.testing.assert_allclose(model.get_weights()[0], kernel - rate * gradient, atol=1e-5)


def test_view_pairs_pair_each_sample_within_its_group():
    groups = np.array([7, 3, 7, 3, 7, 7, 3, 9, 3, 5, 5, 5])  # sizes: 7 -> 4, 3 -> 4, 9 -> 1, 5 -> 3
    pairs = consistency.view_pairs(groups, np.random.default_rng(1))
    assert all(groups[a] == groups[b] for a, b in pairs)
    assert len(pairs) == 2 + 2 + 1 + 2
    counts = np.bincount(pairs.ravel(), minlength=len(groups))
    assert counts[groups != 5].tolist() == [1, 1, 1, 1, 1, 1, 1, 2, 1] and sorted(counts[groups == 5]) == [1, 1, 2]
    lone = np.flatnonzero(groups == 9)[0]
    assert [lone, lone] in pairs.tolist()  # alone in its group: paired with itself
    assert not any(a == b for a, b in pairs if groups[a] != 9)
    again = consistency.view_pairs(groups, np.random.default_rng(1))
    np.testing.assert_array_equal(pairs, again)


def test_paired_batches_hold_first_views_then_their_partners():
    groups = np.repeat(np.arange(10), 4)
    x, y = np.arange(40.0)[:, None], np.arange(40) * 10
    batches = consistency.paired_batches(x, y, groups, batch_size=8, seed=3)
    steps = consistency.steps_per_epoch(groups, 8)
    assert steps == 5
    odd = np.repeat(np.arange(4), [1, 2, 3, 5])  # 1 + 1 + 2 + 3 pairs: 7, in batches of 3 pairs
    assert consistency.steps_per_epoch(odd, 6) == 3 == -(-len(consistency.view_pairs(odd, np.random.default_rng(0))) // 3)
    for epoch in range(2):
        seen = []
        for _ in range(steps):
            xb, yb = next(batches)
            half = len(xb) // 2
            first, second = xb[:half, 0].astype(int), xb[half:, 0].astype(int)
            assert np.array_equal(groups[first], groups[second]) and np.all(first != second)
            np.testing.assert_array_equal(yb, xb[:, 0].astype(int) * 10)
            seen += [*first, *second]
        assert sorted(seen) == list(range(40))  # each take once an epoch


def test_keyword_groups_are_one_speakers_takes_of_one_word_and_one_recordings_copies():
    options = datasets.parse_options("keywords", {"words": ["yes", "no"], "speakers": 10, "repetitions": 2,
                                                  "extra_unknown_takes": 2, "real_train_copies": 3})
    speakers = len(keywords.speaker_catalog(options, 0)["train"])
    # load()'s order per speaker: each keyword's takes, the other words, the silences, then the extra other words.
    per_speaker = [2, 2, 3, 3, 1, 1, 0, 0, 1, 1]
    own = [2, 2, 2, 3, 3, 3]  # two own recordings, three copies each
    labels = np.array(per_speaker * speakers + own)
    groups = keywords.train_view_groups(options, 0, labels)
    speaker = np.r_[np.repeat(np.arange(speakers), len(per_speaker)), [speakers] * len(own)]
    recording = np.r_[[-1] * (speakers * len(per_speaker)), [0, 0, 0, 1, 1, 1]]
    same = groups[:, None] == groups[None, :]
    expected = (speaker[:, None] == speaker[None, :]) & (labels[:, None] == labels[None, :]) & (recording[:, None] == recording[None, :])
    np.testing.assert_array_equal(same, expected)
    any_speaker = keywords.train_view_groups(dataclasses.replace(options, consistency_views="word"), 0, labels)
    np.testing.assert_array_equal(any_speaker[:, None] == any_speaker[None, :], labels[:, None] == labels[None, :])


def test_pairing_option_leaves_the_cached_clips_and_features_alone(tmp_path):
    """`consistency_views` picks pairs only: loading with the other choice synthesizes and extracts nothing new."""
    tiny = {"words": ["yes"], "unknown_words": ["cat"], "speakers": 5, "repetitions": 1, "engines": ["espeak-ng"],
            "val_share": 0.2, "test_share": 0.2}
    first = datasets.load("keywords", tiny, 0, tmp_path)
    cached = sorted(path.name for path in tmp_path.rglob("*.npz"))
    second = datasets.load("keywords", {**tiny, "consistency_views": "word"}, 0, tmp_path)
    assert sorted(path.name for path in tmp_path.rglob("*.npz")) == cached
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(second.train_groups, second.y_train)


def tiny_spec(weight: float):
    return parse_spec({
        "name": "digits",
        "data": {"dataset": "digits"},
        "model": {"arch": "tiny_cnn", "width": 0.25},
        "train": {"epochs": 1, "batch_size": 64, "consistency_weight": weight},
    })


def test_weight_zero_is_plain_keras_training(tmp_path):
    """λ = 0 takes Keras' own shuffled fit, weight for weight; λ > 0 on grouped data trains other weights."""
    import tf_keras

    dataset = trainer.load_dataset(tiny_spec(0.0))
    dataset = dataclasses.replace(dataset, x_train=dataset.x_train[:256], y_train=dataset.y_train[:256])
    ours = trainer.build_model(tiny_spec(0.0), dataset)
    trainer.fit(ours, tiny_spec(0.0), dataset)

    plain = trainer.build_model(tiny_spec(0.0), dataset)
    tf_keras.utils.set_random_seed(0)
    plain.compile(optimizer=tf_keras.optimizers.Adam(tf_keras.optimizers.schedules.CosineDecay(1e-3, 4, alpha=0.01)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    plain.fit(dataset.x_train, dataset.y_train, validation_data=(dataset.x_val, dataset.y_val), epochs=1, batch_size=64,
              shuffle=True, verbose=0)
    for a, b in zip(ours.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)

    grouped = dataclasses.replace(dataset, train_groups=dataset.y_train)  # a digit's images as views of one another
    consistent = trainer.build_model(tiny_spec(1.0), grouped)
    history = trainer.fit(consistent, tiny_spec(1.0), grouped)
    assert history["consistency"][0] > 0
    assert any(not np.array_equal(a, b) for a, b in zip(consistent.get_weights(), plain.get_weights()))


def test_data_without_views_is_refused_by_name():
    spec = tiny_spec(1.0)
    dataset = trainer.load_dataset(spec)
    with pytest.raises(MCUForgeError, match=r"train.consistency_weight: data set 'digits' holds no views"):
        trainer.fit(trainer.build_model(spec, dataset), spec, dataset)
