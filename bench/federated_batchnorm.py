"""Is a federated model's gap to central its batch-norm statistics? The same weights scored with three sets.

    .venv/bin/python bench/federated_batchnorm.py RUN_DIR

RUN_DIR is a federated run's output (bench/federated_keywords.py writes one per row and seed);
its spec.json gives the fleet. Scores float accuracy on the validation and test splits, and int8
in TFLM on the test split, of the final global weights with
(a) the statistics the rounds left (each round's clients' own after their local training, pooled),
(b) the exact statistics of the whole training split under these weights (a bound: the server holds no data),
(c) what `statistics_round` gives, computed here in process: the statistics of round rounds + 1's
    sampled clients' data under these weights, pooled as the server pools them (a weighted mean of
    second moments, strategy.pooled_variances).
(b) is also what that round would give were every client sampled (the clients hold the whole training split).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from mcuforge.config import parse_dataclass
from mcuforge.layout import KERAS_MODEL_FILE
from mcuforge.spec import Spec


def scores(spec: Spec, model, dataset) -> dict[str, float]:
    from mcuforge.pipeline import int8_test_accuracy
    from mcuforge.train.trainer import save_model

    accuracy = lambda x, y: float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1) == y))  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="mcuforge-bn-") as scratch:
        path = Path(scratch) / KERAS_MODEL_FILE
        save_model(model, path)
        int8 = int8_test_accuracy(spec, path)
    return {"val": accuracy(dataset.x_val, dataset.y_val), "test": accuracy(dataset.x_test, dataset.y_test), "int8_test": int8}


def pooled_statistics(model, client_data: list[np.ndarray]) -> list[np.ndarray]:
    """The model's weights with the batch-norm statistics the server would pool from these clients' data, in process."""
    from mcuforge.train.federated.strategy import pooled_variances, second_moments, set_batch_statistics, variance_means

    variances = variance_means(model)
    total = sum(len(x) for x in client_data)
    mean = [np.zeros_like(w) for w in model.get_weights()]
    for x in client_data:
        set_batch_statistics(model, x)
        for pooled, moment in zip(mean, second_moments(model.get_weights(), variances)):
            pooled += moment * (len(x) / total)
    return pooled_variances(mean, variances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()

    from mcuforge.train.federated.partition import client_partitions
    from mcuforge.train.federated.strategy import sample_partitions, set_batch_statistics
    from mcuforge.train.trainer import load_dataset, load_model

    spec = parse_dataclass(Spec, json.loads((args.run / "spec.json").read_text()))
    dataset = load_dataset(spec)
    model = load_model(args.run / KERAS_MODEL_FILE)
    weights = model.get_weights()
    rows = {"(a) as trained": scores(spec, model, dataset)}
    print(rows)

    set_batch_statistics(model, dataset.x_train)
    rows["(b) exact, whole training split"] = scores(spec, model, dataset)
    print(rows)

    partitions = client_partitions(spec, dataset)
    count = max(1, round(spec.federated.fraction * len(partitions)))
    sampled = sample_partitions(spec.train.seed, spec.federated.rounds + 1, list(range(len(partitions))), count)
    model.set_weights(weights)
    model.set_weights(pooled_statistics(model, [dataset.x_train[partitions[p]] for p in sampled]))
    rows[f"(c) statistics round, {count} sampled clients"] = scores(spec, model, dataset)
    for name, row in rows.items():
        print(f"| {name} | {100 * row['val']:.1f} % | {100 * row['test']:.1f} % | {100 * row['int8_test']:.1f} % |")


if __name__ == "__main__":
    main()
