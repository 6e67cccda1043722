"""Knowledge distillation: a small zoo student learns from a trained teacher.

loss = alpha * CE(labels, softmax(student)) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The teacher's logits are computed once (it is frozen and the inputs are not
augmented) and packed beside the labels, so the student trains with an ordinary
`fit` on its logits sub-model, which shares every weight with the student.

Reconstruction models (anomaly detection) have no classes: the student fits
alpha * MSE(x, y) + (1 - alpha) * MSE(teacher(x), y), which equals, up to a
constant, the MSE to the single target alpha * x + (1 - alpha) * teacher(x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuforge.compress.common import CompressStep, Context, TrainingOptions, fine_tune
from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError
from mcuforge.train import zoo
from mcuforge.train.datasets import ANOMALY, Dataset

LOGITS_LAYER = "logits"


@dataclass(frozen=True)
class DistillOptions(TrainingOptions):
    arch: str | None = spec_field(None, help="student architecture [default: the spec's model.arch]")
    width: float = spec_field(0.5, min_exclusive=0.0, max=8.0, help="student width multiplier")
    options: dict = spec_field({}, help="student architecture options")
    teacher: str | None = spec_field(None, help="teacher .keras file [default: the spec's train output]")
    alpha: float = spec_field(0.1, min=0.0, max=1.0, help="weight of the labels' cross-entropy")
    temperature: float = spec_field(4.0, min_exclusive=0.0, max=100.0, help="softening temperature T")
    epochs: int = spec_field(20, min=1, max=10000)
    compare_with_labels_only: bool = spec_field(True, help="also train the student from labels alone for the report")

    def __post_init__(self) -> None:
        if self.arch is not None:
            zoo.check_arch(self.arch, self.options)

    def check_student(self, model_arch: str) -> None:
        """The student must do the teacher's job: classify, or reconstruct its input."""
        student = self.arch or model_arch
        if (student in zoo.RECONSTRUCTION_ARCHS) != (model_arch in zoo.RECONSTRUCTION_ARCHS):
            raise MCUForgeError(
                f"compress.options.distill.arch: student {student!r} and model.arch {model_arch!r} do different tasks "
                "(one classifies, one reconstructs): pick a student of the same kind"
            )


def logits_model(model):
    """The sub-model ending at the zoo's `logits` Dense layer (before the softmax)."""
    import tf_keras

    try:
        layer = model.get_layer(LOGITS_LAYER)
    except ValueError:
        raise MCUForgeError(
            f"model {model.name!r} has no layer named {LOGITS_LAYER!r}: distillation needs a zoo classifier "
            "ending in Dense 'logits' -> Softmax 'probabilities'"
        ) from None
    return tf_keras.Model(model.inputs, layer.output, name=f"{model.name}_logits")


def distillation_loss(alpha: float, temperature: float):
    """A Keras loss over y_true = [label, teacher logits...] and y_pred = student logits."""
    import tensorflow as tf

    def loss(y_true, y_pred):
        labels = tf.cast(y_true[:, 0], tf.int32)
        teacher = y_true[:, 1:]
        hard = tf.keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        p_teacher = tf.nn.softmax(teacher / temperature)
        log_p_teacher = tf.nn.log_softmax(teacher / temperature)
        log_p_student = tf.nn.log_softmax(y_pred / temperature)
        kl = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
        return alpha * hard + (1.0 - alpha) * temperature**2 * kl

    return loss


def check_teacher(teacher, dataset: Dataset, source: str) -> None:
    """The teacher must score the student's classes (or reconstruct the student's input)."""
    if dataset.task == ANOMALY:
        if tuple(teacher.output_shape[1:]) != dataset.input_shape:
            raise MCUForgeError(
                f"distillation teacher {source} outputs shape {tuple(teacher.output_shape[1:])}, but the data set's "
                f"inputs have shape {dataset.input_shape}: a reconstruction teacher must reproduce its input"
            )
        return
    classes = int(teacher.output_shape[-1])
    if classes != dataset.num_classes:
        raise MCUForgeError(
            f"distillation teacher {source} predicts {classes} classes, but the data set has {dataset.num_classes}: "
            "train the teacher on the same data set or set compress.options.distill.teacher"
        )


def build_student(options: DistillOptions, context: Context):
    import tf_keras

    spec, data = context.spec, context.dataset
    tf_keras.utils.set_random_seed(spec.train.seed)
    return zoo.build(options.arch or spec.model.arch, data.input_shape, data.num_classes, options.width, **options.options)


def distill(teacher, options: DistillOptions, context: Context):
    """Train a fresh student on labels (or inputs) and the teacher's outputs; returns the student."""
    data = context.dataset
    student = build_student(options, context)
    if data.task == ANOMALY:
        reconstructions = teacher.predict(data.x_train, batch_size=256, verbose=0)
        fine_tune(student, context, options, targets=options.alpha * data.x_train + (1 - options.alpha) * reconstructions)
        return student
    teacher_logits = logits_model(teacher).predict(data.x_train, batch_size=256, verbose=0)
    targets = np.concatenate([data.y_train[:, None].astype(np.float32), teacher_logits], axis=1)
    fine_tune(logits_model(student), context, options, loss=distillation_loss(options.alpha, options.temperature), targets=targets)
    return student


def labels_only(options: DistillOptions, context: Context):
    """The same student, epochs and seed, trained from labels (or inputs) alone: the baseline distillation must beat."""
    student = build_student(options, context)
    fine_tune(student, context, options)
    return student


DISTILL = CompressStep(
    "distill",
    DistillOptions,
    distill,
    must_precede={
        "channel_prune": "distillation trains a fresh student, discarding the channels pruned before it",
        "prune": "distillation trains a fresh student, discarding the pruning before it",
        "cluster": "distillation trains a fresh student, discarding the clusters before it",
        "quantize": "distillation trains a fresh float student, discarding the quantization before it",
    },
    takes_teacher=True,
    check=lambda options, model_arch: options.check_student(model_arch),
    baseline=lambda options, context: labels_only(options, context) if options.compare_with_labels_only else None,
    baseline_label="labels only",
)
