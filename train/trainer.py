"""The train stage: spec in, a saved tf_keras model plus a metrics record out.

Output directory (written atomically): `model.h5` (tfmot reloads it),
`model_float.tflite` (the float TFLite the size figure comes from),
`metrics.json` (the TrainResult), `history.json` and `training.png`.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from mcuforge.artifacts import atomic_output_dir, data_cache_dir, write_json_atomic
from mcuforge.config import to_dict
from mcuforge.errors import MCUForgeError
from mcuforge.progress import Progress
from mcuforge.results import TrainResult
from mcuforge.spec import Spec, TrainSpec
from mcuforge.train import consistency, datasets, zoo
from mcuforge.train.datasets import ANOMALY, Dataset
from mcuforge.train.profile import model_macs

def check_spec(spec: Spec) -> None:
    """Reject bad data-set options or an unknown model arch/option before any stage loads data or trains."""
    datasets.parse_options(spec.data.dataset, spec.data.options)
    zoo.check_arch(spec.model.arch, spec.model.options)


def load_dataset(spec: Spec) -> Dataset:
    return datasets.load(spec.data.dataset, spec.data.options, spec.data.seed, data_cache_dir())


def load_model(path: Path | str):
    """Load a model saved by any stage, including tfmot-wrapped (pruned, QAT, clustered) ones."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    path = Path(path)
    if not path.exists():
        raise MCUForgeError(f"model not found: {path}. Run `mcuforge train SPEC` first.")
    if importlib.util.find_spec("larq") is not None:
        import larq  # noqa: F401  (registers Larq's layers and quantizers, for binarized models)
    import mcuforge.train.weight_range  # noqa: F401  (registers the 4-bit layers' QuantizeConfig)
    with tfmot.quantization.keras.quantize_scope(), tfmot.clustering.keras.cluster_scope():
        with tfmot.sparsity.keras.prune_scope():
            return tf_keras.models.load_model(path, compile=False)


def save_model(model, path: Path | str) -> None:
    """Save in HDF5 (see mcuforge.layout.KERAS_MODEL_FILE), without Keras' notice that HDF5 is a legacy format."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy.*")
        model.save(path)


def build_model(spec: Spec, dataset: Dataset):
    """The spec's zoo model for this data set's input shape and classes, initialized from the train seed."""
    import tf_keras

    reconstructs = spec.model.arch in zoo.RECONSTRUCTION_ARCHS
    if reconstructs != (dataset.task == ANOMALY):
        raise MCUForgeError(
            f"model.arch {spec.model.arch!r} does not fit the {dataset.task} data set {dataset.name!r}: "
            f"use {'autoencoder' if dataset.task == ANOMALY else 'a classifier such as ' + 'tiny_cnn or ds_cnn'}"
        )
    # Seeded here, not by callers: initial weights must not depend on what ran before in the process.
    tf_keras.utils.set_random_seed(spec.train.seed)
    return zoo.build(spec.model.arch, dataset.input_shape, dataset.num_classes, spec.model.width, **spec.model.options)


def learning_rate_schedule(cfg: TrainSpec, total: int):
    """`cfg.lr_schedule` over `total` steps: a Keras schedule (called with the step), or the constant rate."""
    import tf_keras

    if cfg.lr_schedule == "cosine":
        return tf_keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=total, alpha=0.01)
    if cfg.lr_schedule == "step":
        return tf_keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(total * 0.5), int(total * 0.75)], [cfg.learning_rate, cfg.learning_rate * 0.1, cfg.learning_rate * 0.01]
        )
    return cfg.learning_rate


def _optimizer(spec: Spec, steps_per_epoch: int):
    import tf_keras

    cfg = spec.train
    lr = learning_rate_schedule(cfg, cfg.epochs * steps_per_epoch)
    optimizers = {
        "adam": tf_keras.optimizers.Adam,
        "sgd": lambda learning_rate: tf_keras.optimizers.SGD(learning_rate, momentum=0.9),
        "rmsprop": tf_keras.optimizers.RMSprop,
    }
    return optimizers[cfg.optimizer](learning_rate=lr)


def compile_model(model, spec: Spec, dataset: Dataset, steps_per_epoch: int) -> None:
    """Compile for the data set's task: cross-entropy on probabilities, or reconstruction MSE."""
    if dataset.task == ANOMALY:
        model.compile(optimizer=_optimizer(spec, steps_per_epoch), loss="mse")
    else:
        model.compile(
            optimizer=_optimizer(spec, steps_per_epoch),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )


def anomaly_scores(reconstructions: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-sample mean squared reconstruction error: the anomaly score."""
    axes = tuple(range(1, x.ndim))
    return np.mean((reconstructions.astype(np.float64) - x) ** 2, axis=axes)


def score_predictions(task: str, predictions: np.ndarray, x: np.ndarray, y: np.ndarray, class_names) -> dict:
    """Accuracy and confusion matrix for classifiers, ROC AUC for anomaly detectors."""
    if task == ANOMALY:
        from sklearn.metrics import roc_auc_score

        scores = anomaly_scores(predictions, x)
        result = {"mean_score": float(np.mean(scores))}
        if len(np.unique(y)) == 2:
            result["auc"] = float(roc_auc_score(y, scores))
        return result
    from sklearn.metrics import confusion_matrix

    predicted = np.argmax(predictions, axis=-1)
    return {
        "accuracy": float(np.mean(predicted == y)),
        "confusion_matrix": confusion_matrix(y, predicted, labels=range(len(class_names))).tolist(),
    }


def evaluate_keras(model, dataset: Dataset) -> dict[str, dict]:
    """Score the float model on every split and extra evaluation set."""
    splits = {
        "train": (dataset.x_train, dataset.y_train),
        "val": (dataset.x_val, dataset.y_val),
        "test": (dataset.x_test, dataset.y_test),
        **dataset.extra_eval,
    }
    results = {}
    for split, (x, y) in splits.items():
        predictions = model.predict(x, batch_size=256, verbose=0)
        results[split] = score_predictions(dataset.task, predictions, x, y, dataset.class_names)
        if split == "train":
            results[split].pop("confusion_matrix", None)
    return results


def float_tflite_bytes(model) -> bytes:
    """The model as a float32 .tflite: the honest 'before quantization' size."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return converter.convert()


def progress_callback(progress: Progress, what: str, epochs: int):
    """A Keras callback reporting each epoch (and its metrics) to `progress`, inside one progress task."""
    import tf_keras

    class EpochProgress(tf_keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.task = progress.task(what, epochs)
            self.advance = self.task.__enter__()

        def on_epoch_end(self, epoch, logs=None):
            self.advance(" ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if k != "lr"))

        def on_train_end(self, logs=None):
            self.task.__exit__(None, None, None)

    return EpochProgress()


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("loss", "accuracy") if k in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, key in zip(axes[0], panels):
        ax.plot(history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(history[f"val_{key}"], label="val")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fit(model, spec: Spec, dataset: Dataset, progress: Progress | None = None, callbacks: tuple = ()) -> dict[str, list[float]]:
    """Compile and fit `model` on the data set per the spec's train section; returns the history.

    `callbacks`: extra Keras callbacks (architecture search reports each epoch's validation score through one).
    """
    import tf_keras

    tf_keras.utils.set_random_seed(spec.train.seed)
    if spec.train.consistency_weight > 0:
        return _fit_consistent(model, spec, dataset, progress, callbacks)
    steps = max(1, int(np.ceil(len(dataset.x_train) / spec.train.batch_size)))
    compile_model(model, spec, dataset, steps)
    targets = (dataset.x_train, dataset.x_val) if dataset.task == ANOMALY else (dataset.y_train, dataset.y_val)
    history = model.fit(
        dataset.x_train,
        targets[0],
        validation_data=(dataset.x_val, targets[1]),
        epochs=spec.train.epochs,
        batch_size=spec.train.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=_epoch_callbacks(progress, spec.train.epochs, callbacks),
    )
    return _history(history)


def _fit_consistent(model, spec: Spec, dataset: Dataset, progress: Progress | None, callbacks: tuple) -> dict[str, list[float]]:
    """`fit` with `train.consistency_weight`: batches of paired views of one group, a consistency term in the loss."""
    groups = dataset.train_groups
    if dataset.task == ANOMALY or groups is None or len(groups) != len(dataset.y_train):
        raise MCUForgeError(
            f"train.consistency_weight: data set {dataset.name!r} holds no views of one sample to pair "
            f"(keywords does: a speaker's takes of a word). Received: {spec.train.consistency_weight}; set 0"
        )
    cfg = spec.train
    steps = consistency.steps_per_epoch(groups, cfg.batch_size)
    trainer = consistency.consistency_model(model, cfg.consistency_weight)
    compile_model(trainer, spec, dataset, steps)
    history = trainer.fit(
        consistency.paired_batches(dataset.x_train, dataset.y_train, groups, cfg.batch_size, cfg.seed),
        steps_per_epoch=steps,
        validation_data=(dataset.x_val, dataset.y_val),
        validation_batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        verbose=0,
        callbacks=_epoch_callbacks(progress, cfg.epochs, callbacks),
    )
    return _history(history)


def _epoch_callbacks(progress: Progress | None, epochs: int, callbacks: tuple) -> list:
    """A progress line per epoch (when someone watches) before the caller's own callbacks."""
    return ([progress_callback(progress, "train epoch", epochs)] if progress else []) + list(callbacks)


def _history(history) -> dict[str, list[float]]:
    """A Keras History as plain floats per metric, for JSON."""
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def model_metrics(spec: Spec, dataset: Dataset, model, float_model_bytes: int, seconds: float, epochs: int) -> dict:
    """A trained model's metrics record (a TrainResult's metrics): what it is, its size and cost, its scores."""
    return {
        "spec": spec.name,
        "task": dataset.task,
        "arch": spec.model.arch,
        "input_shape": list(dataset.input_shape),
        "classes": dataset.class_names,
        "parameters": int(model.count_params()),
        "macs": model_macs(model),
        "float_model_bytes": float_model_bytes,
        "training_seconds": round(seconds, 2),
        "epochs": epochs,
        **evaluate_keras(model, dataset),
    }


def train(spec: Spec, out_dir: Path | str, progress: Progress | None = None) -> TrainResult:
    """Train the spec's model and write the stage's artifacts atomically to `out_dir`."""
    check_spec(spec)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)  # an output path that cannot be made fails now, not after training
    dataset = load_dataset(spec)
    model = build_model(spec, dataset)
    started = time.perf_counter()
    history = fit(model, spec, dataset, progress)
    seconds = time.perf_counter() - started
    float_model = float_tflite_bytes(model)
    result = TrainResult(model_metrics(spec, dataset, model, len(float_model), seconds, spec.train.epochs))
    with atomic_output_dir(out_dir) as staging:
        save_model(model, staging / result.model)
        (staging / "model_float.tflite").write_bytes(float_model)
        result.save(staging)
        write_json_atomic(staging / "history.json", history)
        write_json_atomic(staging / "spec.json", to_dict(spec))
        plot_history(history, staging / "training.png")
    return result
