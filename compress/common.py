"""What every compression step shares: the step object with its rules, its context and the fine-tuning loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcuforge.config import spec_field
from mcuforge.progress import Progress
from mcuforge.spec import Spec
from mcuforge.train.datasets import ANOMALY, Dataset


# What a quantization-aware step must keep of an earlier step's work (see CompressStep.preserves).
SPARSITY = "sparsity"
CLUSTERS = "clusters"


@dataclass(frozen=True)
class CompressStep:
    """One compression step and the rules it carries; the recipe check and the compress stage read only these.

    must_precede: steps this one must come before, each with why the other order cannot work.
    takes_teacher: the step is applied to the teacher (the trained model, or its options' `teacher`),
    not to the model the earlier steps produced.
    preserves: what quantization-aware training after this step must keep (SPARSITY, CLUSTERS).
    check: validates the step's options against the spec's model.arch (parse_recipe, before any step runs).
    details: figures beside the common ones for the step's row, from the models before and after it.
    baseline: a comparison model trained without what the step adds (None when the options turn it off),
    reported as "<name> (<baseline_label>)" off the recipe's chain.
    """

    name: str
    options: type
    apply: Callable[[Any, Any, "Context"], Any]
    must_precede: Mapping[str, str] = field(default_factory=dict)
    takes_teacher: bool = False
    preserves: str | None = None
    check: Callable[[Any, str], None] | None = None
    details: Callable[[Any, Any], dict[str, Any]] | None = None
    baseline: Callable[[Any, "Context"], Any] | None = None
    baseline_label: str = ""


@dataclass(frozen=True)
class Context:
    """Inputs a step may read: the spec, the data set, the steps already applied, and where fine-tuning epochs are reported."""

    spec: Spec
    dataset: Dataset
    done: tuple[CompressStep, ...] = ()
    progress: Progress = Progress.quiet()

    @property
    def preserved(self) -> frozenset[str]:
        """What the steps already applied achieved that later steps must keep."""
        return frozenset(step.preserves for step in self.done if step.preserves)


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

    from mcuforge.train.trainer import compile_model, progress_callback

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
        callbacks=[*callbacks, progress_callback(context.progress, "fine-tune epoch", spec.train.epochs)],
    )
