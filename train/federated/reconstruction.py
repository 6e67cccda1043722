"""A device's local training of an anomaly detector: FedProx's step on the reconstruction error.

An autoencoder (vibration: one client per machine) learns to reproduce its own
healthy windows, so its target is its input and its loss the mean squared
error; everything else (the proximal term, a fresh Adam per round, the
client's own batch-norm statistics) is LocalTrainer's.
"""

from __future__ import annotations

from mcuforge.train.federated.strategy import LocalTrainer


class ReconstructionTrainer(LocalTrainer):
    """LocalTrainer whose step minimizes mean((model(x) - x)^2) + mu/2 * ||w - w_global||^2; call fit(x, x, ...)."""

    def __init__(self, model, learning_rate: float):
        import tensorflow as tf

        super().__init__(model, learning_rate)
        trainable = model.trainable_weights

        @tf.function(reduce_retracing=True)
        def step(xb, targets):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(xb, training=True) - targets))
                proximal = tf.add_n([tf.reduce_sum(tf.square(v - a)) for v, a in zip(trainable, self.anchor)])
                total = loss + (self.mu / 2.0) * proximal
            self.optimizer.apply_gradients(zip(tape.gradient(total, trainable), trainable))
            return loss

        self.step = step
