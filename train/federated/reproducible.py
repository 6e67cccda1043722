"""Reproducible local training: the same seed gives the same client updates, whichever process trains which client.

Two runs of one keywords fleet with the same seed and the same sampled clients
ended 5.6 points apart (150 rounds). A client's dropout drew its masks from
TensorFlow's legacy stateful random ops, whose state lives in each simulation
process and advances with every step it ran, so a client's masks depended on
which process Ray handed it to and what that process had trained before. Its
masks now come from a generator restarted from (seed, round, client) at the start
of every fit (`seedable_dropout`, `reseed_dropout`); the simulation's client
processes run each kernel on one thread with TensorFlow's op determinism
(`deterministic_tensorflow`), and the server sums the updates in client order
(strategy.aggregate_fit).
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cache


@cache
def deterministic_tensorflow() -> None:
    """One thread per op and deterministic kernels in this process (once; before TensorFlow runs its first op,
    when its thread pools are fixed: TensorFlow raises otherwise)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()


@contextmanager
def seedable_dropout():
    """Keras layers built inside draw their random masks from a tf.random.Generator of their own (which
    `reseed_dropout` restarts), not from the process-wide stateful random ops."""
    import tf_keras

    experimental = tf_keras.backend.experimental
    enabled = experimental.is_tf_random_generator_enabled()
    experimental.enable_tf_random_generator()
    try:
        yield
    finally:
        if not enabled:
            experimental.disable_tf_random_generator()


def reseed_dropout(model, seed: int) -> None:
    """Restart the random generator of every random layer of `model` (built under seedable_dropout) from `seed`.

    Keras keeps a layer's generator on the layer (`_random_generator`, no public accessor) and creates
    it on the layer's first call: it is created here first, so a process's first fit is reseeded too.
    """
    for layer in model.submodules:
        random = getattr(layer, "_random_generator", None)
        if random is None:
            continue
        random._maybe_init()
        if random._generator is None:
            raise ValueError(f"layer {layer.name} draws from TensorFlow's stateful random ops: build the model under seedable_dropout()")
        random._generator.reset_from_seed(seed)
