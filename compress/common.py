"""What every compression step shares: its context and the fine-tuning loop."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mcuforge.spec import Spec, spec_field
from mcuforge.train.datasets import ANOMALY, Dataset


@dataclass(frozen=True)
class Context:
    """Inputs a step may read: the spec, the data set, and the steps already applied."""

    spec: Spec
    dataset: Dataset
    done: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingOptions:
    """Fine-tuning budget, common to the steps that retrain."""

    epochs: int = spec_field(3, min=1, max=10000, help="fine-tuning epochs")
    learning_rate: float = spec_field(1e-3, min_exclusive=0.0, max=10.0)


def fine_tune(model, context: Context, options: TrainingOptions, callbacks=(), loss=None, targets=None) -> None:
    """Compile and fit `model` on the training split with the spec's optimizer and seed.

    `loss` and `targets` replace the task's default loss and labels (distillation
    trains logits against labels packed with the teacher's logits).
    """
    import tf_keras

    from mcuforge.train.trainer import compile_model

    spec = dataclasses.replace(
        context.spec,
        train=dataclasses.replace(context.spec.train, epochs=options.epochs, learning_rate=options.learning_rate),
    )
    data = context.dataset
    tf_keras.utils.set_random_seed(spec.train.seed)
    steps = max(1, int(np.ceil(len(data.x_train) / spec.train.batch_size)))
    compile_model(model, spec, data, steps)
    if loss is not None:
        model.compile(optimizer=model.optimizer, loss=loss)
    if targets is None:
        targets = data.x_train if data.task == ANOMALY else data.y_train
    model.fit(
        data.x_train,
        targets,
        epochs=spec.train.epochs,
        batch_size=spec.train.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=list(callbacks),
    )
