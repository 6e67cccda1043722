"""The federate stage: a Flower simulation of the spec's fleet, in place of central training.

Output directory (written atomically), as the train stage's plus the rounds:
`model.h5`, `model_float.tflite`, `metrics.json` (a TrainResult whose metrics
hold a `federated` record: per-round accuracy and uploaded bytes, clients,
wall time, and the int8 model's test score in TFLM, `int8_test_<metric_name>`;
an anomaly detector's rounds record their ROC AUC as test_accuracy), `rounds.json`,
`spec.json` and `federated.png` (accuracy and bytes per round).

Nothing reaches the internet: Flower's telemetry is off, its home and Ray's
session directory live under the build root, Ray's usage stats are off.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import asdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mcuforge.artifacts import atomic_output_dir, write_json_atomic
from mcuforge.config import to_dict
from mcuforge.errors import MCUForgeError
from mcuforge.layout import KERAS_MODEL_FILE
from mcuforge.progress import Progress
from mcuforge.results import TrainResult
from mcuforge.spec import Spec
from mcuforge.train.federated import NO_TELEMETRY

# Ray's socket paths (session directory + ~60 characters) must fit in 107 bytes.
RAY_TEMP_MAX_CHARS = 45


def with_federated(spec: Spec) -> Spec:
    """`spec` with its federated section, or the section's defaults when it has none (`mcuforge federate` on any spec)."""
    from dataclasses import replace

    from mcuforge.spec import FederatedSpec

    return spec if spec.federated is not None else replace(spec, federated=FederatedSpec())


def offline_environment(root: Path) -> dict[str, str]:
    """The environment that keeps Flower and Ray local and under `root` (for this process and the ones it starts)."""
    ray_temp = (root / ".ray").resolve()
    if len(str(ray_temp)) > RAY_TEMP_MAX_CHARS:
        raise MCUForgeError(
            f"the build root {root.resolve()} is too long for Ray's socket paths "
            f"(its session directory {ray_temp} must be at most {RAY_TEMP_MAX_CHARS} characters): pass a shorter --root"
        )
    return {**NO_TELEMETRY, "FLWR_HOME": str((root / ".flwr").resolve()), "RAY_TMPDIR": str(ray_temp)}


def _server_evaluation(model, dataset):
    """The server's score of each round's model on the test split: (loss, {"accuracy": the task's metric}).

    For an anomaly detector the loss is the mean reconstruction error and the
    metric (recorded as the round's test_accuracy) is the ROC AUC.
    """

    def evaluate(server_round: int, weights: list[np.ndarray], config: dict):
        from mcuforge.train.datasets import ANOMALY
        from mcuforge.train.trainer import anomaly_scores, score_predictions

        model.set_weights(weights)
        predictions = model.predict(dataset.x_test, batch_size=256, verbose=0)
        scores = score_predictions(dataset.task, predictions, dataset.x_test, dataset.y_test, dataset.class_names)
        if dataset.task == ANOMALY:
            return float(np.mean(anomaly_scores(predictions, dataset.x_test))), {"accuracy": scores["auc"]}
        eps = 1e-7
        loss = float(-np.mean(np.log(np.clip(predictions[np.arange(len(predictions)), dataset.y_test], eps, 1.0))))
        return loss, {"accuracy": scores["accuracy"]}

    return evaluate


def fleet(spec: Spec, progress: Progress | None = None):
    """What the server side of `spec`'s run needs: (data set, model to train, strategy, client count)."""
    from mcuforge.train.datasets import ANOMALY
    from mcuforge.train.federated.partition import client_partitions
    from mcuforge.train.federated.secure import check_secure
    from mcuforge.train.federated.strategy import FleetStrategy, batch_statistics, variance_means
    from mcuforge.train.trainer import build_model, check_spec, load_dataset

    check_spec(spec)
    settings = spec.federated
    dataset = load_dataset(spec)
    clients = len(client_partitions(spec, dataset))
    if settings.min_clients > clients:
        raise MCUForgeError(f"federated.min_clients: expected at most the {clients} clients. Received: {settings.min_clients}")
    check_secure(spec, clients)
    anomaly = dataset.task == ANOMALY
    if anomaly and settings.personalization is not None:
        raise MCUForgeError(
            "federated.personalization: fine-tunes a classifier head; an anomaly detector has none: drop personalization"
        )
    model = build_model(spec, dataset)
    model.compile(loss="mse" if anomaly else "sparse_categorical_crossentropy")
    progress = progress or Progress.quiet()
    metric = "AUC" if anomaly else "accuracy"

    def show(record) -> None:
        sent = sum(record.uploaded_bytes or [])
        progress.line(
            f"round {record.round}: {record.answered}/{record.sampled} clients answered, "
            f"{sent} bytes up, test {metric} {record.test_accuracy:.4f}"
        )

    strategy = FleetStrategy(
        settings, clients, model.get_weights(), _server_evaluation(model, dataset),
        seed=spec.train.seed, statistics=batch_statistics(model), variances=variance_means(model), on_round=show,
    )
    return dataset, model, strategy, clients


def check_aggregated(records, settings) -> None:
    """Fail unless some round really aggregated: Flower exits 0 even when every fit failed.

    The clients' refusals are in the round records (the strategy's failures; under SecAgg+ too, see secure.py).
    """
    if any(record.aggregated for record in records):
        return
    errors = sorted({e for record in records for e in record.errors})
    if errors:
        raise MCUForgeError(f"no federated round aggregated ({len(records)} rounds); client errors: {'; '.join(errors)}")
    raise MCUForgeError(
        f"no federated round aggregated ({len(records)} rounds, every one below federated.min_clients="
        f"{settings.min_clients} answers, no client error): lower dropout or min_clients"
    )


class _Kept(logging.Handler):
    def __init__(self, kept: list[str]):
        super().__init__(logging.ERROR)
        self.kept = kept

    def emit(self, record: logging.LogRecord) -> None:
        self.kept.append(" ".join(self.format(record).split()))


@contextmanager
def quiet_flower():
    """Flower's log off the terminal during the rounds (injected failures are expected: each round's record
    counts and names them), its errors kept in the yielded list (flwr_exit's reason, for the stage's error)."""
    flower_log = logging.getLogger("flwr")
    handlers, propagate, kept = list(flower_log.handlers), flower_log.propagate, []
    for handler in handlers:
        flower_log.removeHandler(handler)
    keeper = _Kept(kept)
    flower_log.addHandler(keeper)
    flower_log.propagate = False
    try:
        yield kept
    finally:
        flower_log.removeHandler(keeper)
        flower_log.propagate = propagate
        for handler in handlers:
            flower_log.addHandler(handler)


def simulate(spec: Spec, root: Path | str = "build", progress: Progress | None = None):
    """Run the federated rounds in Flower's simulation engine; returns (final model, dataset, strategy, client count, seconds)."""
    from mcuforge.train.trainer import check_spec

    check_spec(spec)
    root = Path(root)
    os.environ.update(offline_environment(root))
    import ray
    from flwr.simulation import run_simulation

    from mcuforge.train.federated.apps import client_app, server_app

    settings = spec.federated
    dataset, model, strategy, clients = fleet(spec, progress)
    Path(os.environ["RAY_TMPDIR"]).mkdir(parents=True, exist_ok=True)
    backend = {
        "init_args": {"num_cpus": os.cpu_count() or 1, "_temp_dir": os.environ["RAY_TMPDIR"], "log_to_driver": False},
        # Flower hands these to Ray's actor options: a client process that dies is restarted, not lost to the
        # pool, and a job that was waiting on that process is retried once (a device that crashes still fails).
        "client_resources": {"num_cpus": settings.client_cpus, "num_gpus": 0.0, "max_restarts": -1, "max_task_retries": 1},
    }
    started = time.perf_counter()
    with quiet_flower() as flower_errors:
        try:
            run_simulation(server_app(spec, strategy), client_app(spec), num_supernodes=clients, backend_config=backend)
        except SystemExit as stop:  # flwr_exit logs why, then exits: a stage must say it
            said = flower_errors[-1] if flower_errors else "nothing logged"
            raise MCUForgeError(
                f"Flower's simulation exited with status {stop.code!r} after {len(strategy.records)} rounds: {said} "
                f"(Ray's logs: {os.environ['RAY_TMPDIR']}/session_latest/logs)"
            ) from stop
        finally:
            if ray.is_initialized():
                ray.shutdown()
    seconds = time.perf_counter() - started
    check_aggregated(strategy.records, settings)
    model.set_weights(strategy.global_weights)
    return model, dataset, strategy, clients, seconds


def federate(
    spec: Spec,
    out_dir: Path | str,
    int8_accuracy: Callable[[Spec, Path], float],
    root: Path | str = "build",
    progress: Progress | None = None,
    deployment=None,
) -> TrainResult:
    """Train the spec's model across its clients and write the stage's artifacts atomically to `out_dir`.

    `int8_accuracy(spec, keras_model_path)` scores the model's int8 conversion on the test split in
    TFLM (accuracy, or ROC AUC for an anomaly detector): deploy's path, handed in by the caller (the train stage does not import deploy).
    `deployment` (a deployment.Deployment) runs the rounds through a SuperLink and SuperNodes instead of the simulation.
    """
    from mcuforge.train.federated.plots import plot_rounds
    from mcuforge.train.trainer import float_tflite_bytes, model_metrics, save_model

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if deployment is not None:
        from mcuforge.train.federated.deployment import deploy

        model, dataset, strategy, clients, seconds = deploy(spec, root, progress, deployment)
    else:
        model, dataset, strategy, clients, seconds = simulate(spec, root, progress)
    rounds = [asdict(record) for record in strategy.records]
    float_model = float_tflite_bytes(model)
    with atomic_output_dir(out_dir) as staging:
        save_model(model, staging / KERAS_MODEL_FILE)
        int8_test_score = int8_accuracy(spec, staging / KERAS_MODEL_FILE)
        metrics = model_metrics(spec, dataset, model, len(float_model), seconds, spec.federated.rounds * spec.federated.local_epochs)
        metrics["federated"] = {
            "clients": clients,
            "rounds": rounds,
            "uploaded_bytes": int(sum(sum(r["uploaded_bytes"] or []) for r in rounds)),
            f"int8_test_{TrainResult(metrics).metric_name}": int8_test_score,
            "wall_seconds": round(seconds, 2),
        }
        result = TrainResult(metrics)
        (staging / "model_float.tflite").write_bytes(float_model)
        result.save(staging)
        write_json_atomic(staging / "rounds.json", rounds)
        write_json_atomic(staging / "spec.json", to_dict(spec))
        plot_rounds(rounds, staging / "federated.png", result.metric_name)
        if spec.federated.personalization is not None:
            from mcuforge.train.federated.personalize import write_personalization

            write_personalization(spec, model, dataset, staging)
    return result
