"""Personalization: each client fine-tunes the global model's classifier head on its own data.

One global model fits the fleet on average; a device whose data differs (its
voice, its machine, its few classes) gains from a few local steps on the head
alone, which is cheap enough to run on the device itself. Each client's data is
split once, deterministically from the seed, into the part it trains on (in the
federated rounds and here) and a held-out part neither ever saw: both models are
scored on that held-out part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.results import ClientGain, PersonalizationResult
from mcuforge.spec import Spec


@dataclass(frozen=True)
class ClientSplit:
    """One client's training-sample indices: what it trains on and what it keeps for scoring."""

    train: np.ndarray
    held_out: np.ndarray


def split_clients(partitions: list[np.ndarray], held_out_fraction: float, seed: int) -> list[ClientSplit]:
    """Hold out a share of every client's samples (at least one when it has two or more).

    A one-sample client keeps its sample for training and has nothing to score
    personalization on; it is left out of the gains.
    """
    rng = np.random.default_rng([seed, 0x9E5])
    splits = []
    for indices in partitions:
        shuffled = rng.permutation(indices)
        count = min(len(indices) - 1, max(1, round(held_out_fraction * len(indices))))
        splits.append(ClientSplit(train=np.sort(shuffled[count:]), held_out=np.sort(shuffled[:count])))
    return splits


def classifier_head(model):
    """The model's last Dense layer: the head that maps features to class logits."""
    import tf_keras

    dense = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.Dense)]
    if not dense:
        raise MCUForgeError(f"model {model.name!r} has no Dense classifier head to personalize")
    return dense[-1]


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    predictions = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == y))


def fine_tune_head(global_model, x: np.ndarray, y: np.ndarray, steps: int, learning_rate: float, batch_size: int, seed: int):
    """A copy of `global_model` whose head took `steps` Adam steps on (x, y); every other layer frozen."""
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    model = tf_keras.models.clone_model(global_model)
    model.set_weights(global_model.get_weights())
    head = classifier_head(model)
    for layer in model.layers:
        layer.trainable = layer is head
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = rng.choice(len(x), size=min(batch_size, len(x)), replace=False)
        model.train_on_batch(x[batch], y[batch])
    return model


def personalize(
    global_model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    splits: list[ClientSplit],
    steps: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> list[ClientGain]:
    """Fine-tune the head per client and score global vs personalized on that client's held-out samples."""
    gains = []
    for client, split in enumerate(splits):
        if len(split.held_out) == 0:
            continue
        x_own, y_own = x_train[split.train], y_train[split.train]
        x_held, y_held = x_train[split.held_out], y_train[split.held_out]
        personal = fine_tune_head(global_model, x_own, y_own, steps, learning_rate, batch_size, seed + client)
        gains.append(
            ClientGain(
                client=client,
                train_samples=len(split.train),
                held_out_samples=len(split.held_out),
                global_accuracy=_accuracy(global_model, x_held, y_held),
                personalized_accuracy=_accuracy(personal, x_held, y_held),
            )
        )
    return gains


def plot_gains(gains: list[ClientGain], path: Path) -> None:
    """Bar chart of each client's held-out accuracy gain, in points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(gains) + 2), 3.2))
    points = [100 * g.gain for g in gains]
    ax.bar([str(g.client) for g in gains], points, color=["tab:green" if p >= 0 else "tab:red" for p in points])
    ax.axhline(float(np.mean(points)), color="black", linestyle="--", linewidth=1, label=f"mean {np.mean(points):+.1f}")
    ax.set_xlabel("client")
    ax.set_ylabel("accuracy gain (points)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def client_splits(spec: Spec, partitions: list[np.ndarray]) -> list[ClientSplit]:
    """Every client's train / held-out split for `spec` (its personalization section, its data seed)."""
    return split_clients(partitions, spec.federated.personalization.held_out, spec.data.seed)


def training_partitions(spec: Spec, partitions: list[np.ndarray]) -> list[np.ndarray]:
    """The samples each client trains on in the federated rounds: all of its own, less the held-out part when personalizing."""
    if spec.federated.personalization is None:
        return partitions
    return [split.train for split in client_splits(spec, partitions)]


def write_personalization(spec: Spec, model, dataset, out_dir: Path) -> PersonalizationResult:
    """Personalize every client from the federated `model`; write personalization.json and its plot to `out_dir`."""
    from mcuforge.train.federated.partition import client_partitions

    settings = spec.federated.personalization
    splits = client_splits(spec, client_partitions(spec, dataset))
    gains = personalize(
        model, dataset.x_train, dataset.y_train, splits, settings.steps, settings.learning_rate, spec.train.batch_size, spec.train.seed
    )
    if not gains:
        raise MCUForgeError("federated.personalization: no client has a held-out sample (every client holds one sample); drop personalization")
    result = PersonalizationResult(
        steps=settings.steps, learning_rate=settings.learning_rate, held_out_fraction=settings.held_out, clients=gains
    )
    result.save(out_dir)
    plot_gains(gains, out_dir / result.plot)
    return result
