"""Consistency training: two views of one thing in each batch, their predictions pulled together.

A data set whose training samples come in groups of views of one thing (`Dataset.train_groups`:
a synthetic speaker's takes of one word, each through its own pitch, tempo, room, noise and
microphone; the augmented copies of one own recording) can train with
`train.consistency_weight` λ > 0. Each batch then holds pairs of views of one group, the
first view of every pair in its first half and the second in its second half, and the loss
is the cross-entropy of every sample plus λ times the pairs' mean symmetric Kullback-Leibler
divergence between the two predicted distributions. Neither view is the clean one (both are
augmented), so the term is symmetric and both sides get its gradient. The model so learns
what the views share, the word, rather than what tells them apart: the synthesizer's
rendering, the room and the microphone.

The views are the takes the data set already holds (synthesized offline and cached), not
augmentation run at training time: the audio chain runs in sox and a room simulator,
far too slow to repeat on every batch.
"""

from __future__ import annotations

import numpy as np

from mcuforge.errors import MCUForgeError

# Probabilities are clipped to [EPSILON, 1] before their logarithm, as Keras' cross-entropy on probabilities does.
EPSILON = 1e-7


def view_pairs(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch's pairs [n, 2] of sample indices, each pair two samples of one group, in random order.

    Every group's samples are shuffled and paired off, so each sample is in one pair; the
    last sample of an odd group is paired again with another of its group (with itself
    when it is its group's only sample, a pair whose divergence is 0).
    """
    order = np.argsort(groups, kind="stable")
    starts = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1]])
    pairs = []
    for members in np.split(order, starts[1:]):
        members = rng.permutation(members)
        even = len(members) // 2 * 2
        pairs.append(members[:even].reshape(-1, 2))
        if even < len(members):
            partner = members[rng.integers(even)] if even else members[-1]
            pairs.append(np.array([[members[-1], partner]]))
    pairs = np.concatenate(pairs)
    return pairs[rng.permutation(len(pairs))]


def pairs_per_batch(batch_size: int) -> int:
    """Pairs in one batch of `batch_size` samples (two samples a pair)."""
    if batch_size < 2:
        raise MCUForgeError(f"train.batch_size: consistency training puts pairs of views in a batch, so it needs >= 2. Received: {batch_size}")
    return batch_size // 2


def paired_batches(x: np.ndarray, y: np.ndarray, groups: np.ndarray, batch_size: int, seed: int):
    """Endless (x, y) batches, epoch after epoch: each batch the first views of its pairs, then their second views.

    Epoch e pairs and orders the samples from its own stream (seed, e), so batches repeat with the seed.
    """
    per_batch = pairs_per_batch(batch_size)
    epoch = 0
    while True:
        pairs = view_pairs(groups, np.random.default_rng([seed, epoch]))
        for start in range(0, len(pairs), per_batch):
            chunk = pairs[start : start + per_batch]
            index = np.concatenate([chunk[:, 0], chunk[:, 1]])
            yield x[index], y[index]
        epoch += 1


def steps_per_epoch(groups: np.ndarray, batch_size: int) -> int:
    """Batches in one epoch of `paired_batches`: view_pairs makes ceil(n / 2) pairs of a group of n, every epoch."""
    pairs = int(np.sum((np.unique(groups, return_counts=True)[1] + 1) // 2))
    return -(-pairs // pairs_per_batch(batch_size))


def symmetric_kl(p, q):
    """Mean over the rows of ½ (KL(p‖q) + KL(q‖p)) = ½ Σ (p − q)(log p − log q): rows are probability distributions."""
    import tensorflow as tf

    log_p = tf.math.log(tf.clip_by_value(p, EPSILON, 1.0))
    log_q = tf.math.log(tf.clip_by_value(q, EPSILON, 1.0))
    return tf.reduce_mean(0.5 * tf.reduce_sum((p - q) * (log_p - log_q), axis=-1))


def consistency_model(model, weight: float):
    """`model` wrapped for fitting on `paired_batches`: its train step adds `weight` × the pairs' symmetric KL.

    Compile and fit the wrapper; the weights trained are `model`'s own. Its `loss` stays the
    cross-entropy (comparable with `val_loss`); the divergence is reported as `consistency`.
    """
    import tensorflow as tf
    import tf_keras

    class ConsistencyTraining(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.inner = model
            self.divergence = tf_keras.metrics.Mean(name="consistency")

        def call(self, x, training=False):
            return self.inner(x, training=training)

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                predicted = self(x, training=True)
                cross_entropy = self.compiled_loss(y, predicted, regularization_losses=self.losses)
                first, second = tf.split(predicted, 2)
                divergence = symmetric_kl(first, second)
                loss = cross_entropy + weight * divergence
            self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
            self.compiled_metrics.update_state(y, predicted)
            self.divergence.update_state(divergence)
            return {metric.name: metric.result() for metric in self.metrics}

        def test_step(self, data):
            x, y = data
            predicted = self(x, training=False)
            self.compiled_loss(y, predicted, regularization_losses=self.losses)
            self.compiled_metrics.update_state(y, predicted)
            return {metric.name: metric.result() for metric in self.metrics if metric is not self.divergence}

    return ConsistencyTraining()
