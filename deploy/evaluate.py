"""The whole test split through TFLM, beside the float Keras model and LiteRT.

TFLM is the reference: it is what the device runs. LiteRT's optimized kernels
round some requantizations differently, so its agreement with TFLM is measured
and reported (outputs that differ, by how many quantization steps, and samples
whose predicted class changes) rather than assumed. LiteRT's reference kernels
(BUILTIN_REF) are run too: they share most of TFLM's arithmetic (measured: bit
exact on digits; 4 of 17,280 keyword outputs differ against 1,383 with the
optimized kernels; at most 2 steps on the vibration autoencoder), so a large
difference there points at the emulation rather than at rounding.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mcuforge.artifacts import write_text_atomic
from mcuforge.config import parse_dataclass
from mcuforge.deploy.convert import convert_model, source_model_path
from mcuforge.deploy.lce import lce_ops, reference_emulator, run_lce
from mcuforge.deploy.tflite_model import TFLiteModel, parse_tflite, read_tflite
from mcuforge.deploy.tflm import Emulator, captured_stderr, dequantize, prepare_input
from mcuforge.errors import MCUForgeError
from mcuforge.layout import INT8_MODEL_FILE
from mcuforge.results import DeployResult
from mcuforge.spec import Spec


@dataclass(frozen=True)
class Agreement:
    """How LiteRT's outputs compare with TFLM's on the same quantized inputs."""

    elements: int
    differing_elements: int
    max_abs_difference: float  # in the output's raw units (quantization steps for integer outputs)
    differing_predictions: int | None  # samples whose argmax differs (classifiers only)


@dataclass(frozen=True)
class ExtraEvaluation:
    """An extra evaluation set (e.g. real recordings): its metric in TFLM int8 and float Keras, and for
    classifiers the TFLM confusion matrix (rows: true class, columns: predicted) over `class_names`."""

    samples: int
    tflm: float
    float_keras: float
    class_names: list[str] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)

    def per_class(self) -> list[tuple[str, int, int]]:
        """(class, clips, clips the int8 model got right) for each class with clips."""
        return [(name, sum(row), row[i]) for i, (name, row) in enumerate(zip(self.class_names, self.confusion_matrix)) if sum(row)]


@dataclass(frozen=True)
class EvaluateResult:
    model_path: str
    samples: int
    metric: str
    tflm: float
    float_keras: float
    litert: Agreement  # LiteRT as users run it (optimized kernels, XNNPACK)
    litert_reference: Agreement  # LiteRT's reference kernels: close to TFLM's arithmetic
    extra: dict[str, ExtraEvaluation]  # extra evaluation sets (e.g. real recordings), by name

    @property
    def drop(self) -> float:
        """Float minus TFLM, in the metric's units (positive means quantization lost)."""
        return self.float_keras - self.tflm


def litert_outputs(data: bytes, batch: np.ndarray, reference_kernels: bool = False) -> np.ndarray:
    """Output 0 of LiteRT's interpreter (optimized or reference kernels), one sample at a time like TFLM."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    with captured_stderr([]):  # LiteRT announces its XNNPACK delegate on stderr
        interpreter = Interpreter(model_content=data, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    shape = tuple(interpreter.get_input_details()[0]["shape"])
    results = []
    for sample in batch:
        interpreter.set_tensor(input_index, sample.reshape(shape))
        interpreter.invoke()
        results.append(np.array(interpreter.get_tensor(output_index), copy=True))
    return np.concatenate(results)


def runtime_outputs(model: TFLiteModel, data: bytes, batch: np.ndarray, reference_kernels: bool = False) -> np.ndarray:
    """Output 0 of LiteRT, or for models with Larq Compute Engine ops of LCE's interpreter (LiteRT's
    runtime with LCE's kernels; reference_kernels then picks LCE's reference binary convolution)."""
    if lce_ops(model):
        shape = model.main.input_tensors[0].shape
        return np.concatenate(list(run_lce(data, [batch.reshape(-1, *shape)], reference_bconv=reference_kernels)[0]))
    return litert_outputs(data, batch, reference_kernels)


def agreement(reference: np.ndarray, other: np.ndarray, classifier: bool = True) -> Agreement:
    """Compare two raw output batches; integers as int32 so that wrapping cannot hide a difference.

    >>> agreement(np.array([[1, -128]], np.int8), np.array([[1, 127]], np.int8))
    Agreement(elements=2, differing_elements=1, max_abs_difference=255.0, differing_predictions=1)
    >>> agreement(np.array([[0.5]]), np.array([[0.25]]), classifier=False)
    Agreement(elements=1, differing_elements=1, max_abs_difference=0.25, differing_predictions=None)
    """
    wide = np.float64 if np.issubdtype(reference.dtype, np.floating) else np.int32
    a, b = reference.astype(wide), other.astype(wide)
    diff = np.abs(a - b)
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return Agreement(
        elements=int(a.size),
        differing_elements=int(np.count_nonzero(diff)),
        max_abs_difference=float(diff.max(initial=0)),
        differing_predictions=int(np.count_nonzero(flat_a.argmax(1) != flat_b.argmax(1))) if classifier else None,
    )


def evaluate(spec: Spec, root: Path | str = "build", model_path: Path | None = None, source: Path | None = None) -> EvaluateResult:
    """Score the int8 model at `model_path` on the test split (and the data set's extra evaluation sets)
    in TFLM beside the float Keras model at `source`; write evaluation.json beside the int8 model.

    Without them: build/<name>/deploy/model_int8.tflite and the spec's Keras model under `root`.
    """
    from mcuforge.train.datasets import ANOMALY
    from mcuforge.train.trainer import load_dataset, load_model, score_predictions

    layout = spec.layout(root)
    model_path = Path(model_path) if model_path is not None else layout.deploy / INT8_MODEL_FILE
    if not model_path.is_file():
        raise MCUForgeError(f"no converted model at {model_path}: run `mcuforge convert SPEC` first")
    model = read_tflite(model_path)
    data = model_path.read_bytes()
    dataset = load_dataset(spec)
    emulator = reference_emulator(model, data)
    keras_model = load_model(source if source is not None else source_model_path(spec, layout))
    metric = "auc" if dataset.task == ANOMALY else "accuracy"

    def metric_of(predictions: np.ndarray, x: np.ndarray, y: np.ndarray, split: str) -> float:
        result = score_predictions(dataset.task, predictions, x, y, dataset.class_names)
        if metric not in result:
            raise MCUForgeError(f"the {split} split of {spec.data.dataset} has one class only: {metric} is undefined")
        return float(result[metric])

    def score(x: np.ndarray, y: np.ndarray, split: str) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(TFLM metric, float Keras metric, TFLM raw outputs, the quantized inputs) on one split."""
        batch = prepare_input(x, emulator.inputs[0], f"the {split} split")
        raw = emulator.run(batch)[0]
        float_predictions = keras_model.predict(x, batch_size=256, verbose=0)
        tflm = metric_of(dequantize(raw, emulator.outputs[0]).reshape(float_predictions.shape), x, y, split)
        return tflm, metric_of(float_predictions, x, y, split), raw, batch

    tflm, float_keras, raw, batch = score(dataset.x_test, dataset.y_test, "test")
    extra = {}
    classifier = dataset.task != ANOMALY
    for name, (x, y) in dataset.extra_eval.items():
        extra_tflm, extra_float, extra_raw, _ = score(x, y, name)
        matrix = []
        if classifier:  # a positive output scale keeps the order: the raw argmax is the predicted class
            from sklearn.metrics import confusion_matrix

            predicted = np.argmax(extra_raw.reshape(len(x), -1), axis=-1)
            matrix = confusion_matrix(y, predicted, labels=range(len(dataset.class_names))).tolist()
        extra[name] = ExtraEvaluation(len(x), extra_tflm, extra_float, list(dataset.class_names) if classifier else [], matrix)
    result = EvaluateResult(
        model_path=str(model_path),
        samples=len(batch),
        metric=metric,
        tflm=tflm,
        float_keras=float_keras,
        litert=agreement(raw, runtime_outputs(model, data, batch), classifier),
        litert_reference=agreement(raw, runtime_outputs(model, data, batch, reference_kernels=True), classifier),
        extra=extra,
    )
    write_text_atomic(model_path.parent / DeployResult.evaluation, json.dumps(asdict(result), indent=2, sort_keys=True) + "\n")
    return result


def int8_accuracy(model, representative: np.ndarray, x: np.ndarray, y: np.ndarray, quantization: str = "int8",
                  io_type: str = "int8") -> float:
    """Classifier `model` converted to int8 as deploy converts it, its accuracy on (x, y) through TFLM (scores search candidates)."""
    data = convert_model(model, representative, quantization, io_type)
    emulator = Emulator(parse_tflite(data, "candidate"), data)
    raw = emulator.run(prepare_input(x, emulator.inputs[0], "the validation split"))[0]
    # a positive output scale keeps the order: the raw argmax is the predicted class
    return float(np.mean(np.argmax(raw.reshape(len(x), -1), axis=-1) == y))


def read_evaluation(path: Path | str) -> EvaluateResult:
    """An evaluation.json loaded back into its typed record."""
    result = parse_dataclass(EvaluateResult, json.loads(Path(path).read_text()), str(path))
    extra = {name: parse_dataclass(ExtraEvaluation, record, f"{path}: extra.{name}") for name, record in result.extra.items()}
    return replace(result, extra=extra)
