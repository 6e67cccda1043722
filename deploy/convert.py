"""Keras to full-integer TFLite: the model the microcontroller runs.

Post-training quantization calibrates activation ranges on a seeded sample of
the training split (spec.deploy.representative_samples); weights are per
channel (the converter's default for convolutions and dense layers). A
quantization-aware model from compress/ already carries its ranges in its
quantize wrappers, so it converts without a representative data set. Every
result is loaded in the TFLM host interpreter before it is written: a model
TFLM cannot run, or one that exceeds the spec's target, is never written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.artifacts import write_bytes_atomic, write_text_atomic
from mcuforge.deploy.export import LABELS_FILE, arena_size
from mcuforge.deploy.targets import Fit, load_target
from mcuforge.deploy.tflite_model import parse_tflite
from mcuforge.deploy.lce import convert_keras, reference_emulator
from mcuforge.deploy.tflm import ArenaUsage, captured_stderr
from mcuforge.errors import MCUForgeError
from mcuforge.layout import INT8_MODEL_FILE, KERAS_MODEL_FILE, BuildLayout
from mcuforge.results import DeployResult
from mcuforge.spec import Spec


@dataclass(frozen=True)
class ConvertResult:
    model_path: Path
    labels_path: Path | None
    source_model: Path
    quantization: str
    io_type: str
    quantization_aware: bool
    size: int
    ops: tuple[str, ...]
    arena: ArenaUsage | None  # TFLM's; None for models with LCE ops, which TFLM cannot run


def source_model_path(spec: Spec, layout: BuildLayout) -> Path:
    """The Keras model the spec deploys when no stage hands one over: the compressed one when the spec
    has compress steps and it exists, else the trained one (never chosen by file age)."""
    compressed, trained = layout.compress / KERAS_MODEL_FILE, layout.train / KERAS_MODEL_FILE
    if spec.compress.steps and compressed.exists():
        return compressed
    if trained.exists():
        return trained
    raise MCUForgeError(f"no model for spec {spec.name!r} at {trained}: run `mcuforge train SPEC` first")


def is_quantization_aware(model) -> bool:
    """True when tfmot's quantize wrappers are in the model (quantize_model / quantize_apply)."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import QuantizeLayer
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_wrapper import QuantizeWrapper

    return any(isinstance(layer, (QuantizeWrapper, QuantizeLayer)) for layer in model.layers)


def representative_sample(x_train: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` training samples (all when there are fewer), chosen with a seeded generator."""
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(x_train), size=min(count, len(x_train)), replace=False)
    return x_train[np.sort(indices)].astype(np.float32)


def convert_model(model, representative: np.ndarray | None, quantization: str = "int8", io_type: str = "int8") -> bytes:
    """Convert a Keras model to full-integer TFLite; `representative` None means the model is QAT.

    quantization "int8": int8 activations and weights. "int16x8": int16
    activations, int8 weights (integer I/O is then int16). io_type "float32"
    keeps float input/output with QUANTIZE/DEQUANTIZE ops at the edges.
    """
    lines: list[str] = []
    with captured_stderr(lines):  # TensorFlow's C++ log lines are noise for users; errors come as exceptions
        import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if representative is not None:
        converter.representative_dataset = lambda: ([sample[np.newaxis]] for sample in representative)
    if quantization == "int16x8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        integer_io = tf.int16
    else:
        if representative is not None:  # with it, a QAT model would need a representative data set too
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        integer_io = tf.int8
    io = tf.float32 if io_type == "float32" else integer_io
    converter.inference_input_type = io
    converter.inference_output_type = io
    try:
        with captured_stderr(lines):
            data = converter.convert()
    except Exception as exc:  # the converter raises ConverterError, ValueError or RuntimeError by stage
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MCUForgeError(f"TFLite conversion to {quantization} failed: {first_line}") from None
    float_ops = parse_tflite(data, "the converted model").float_ops
    if float_ops:
        raise MCUForgeError(
            f"TFLite conversion to {quantization} left float ops: {', '.join(float_ops)}; "
            "the layers behind them have no integer kernels: replace them in the model"
        )
    return data


def convert(spec: Spec, root: Path | str = "build", source: Path | None = None, out_dir: Path | None = None) -> ConvertResult:
    """Convert the Keras model at `source` to `out_dir`/model_int8.tflite (with labels.txt and convert.json).

    Without `source` and `out_dir`: the spec's model under `root` (see source_model_path) into build/<name>/deploy.
    """
    from mcuforge.train.trainer import load_dataset, load_model
    from mcuforge.train.zoo import BINARY_ARCHS

    binary = spec.model.arch in BINARY_ARCHS
    if binary and (spec.deploy.io_type, spec.deploy.quantization) != ("float32", "int8"):
        raise MCUForgeError(
            f"deploy.io_type: {spec.model.arch} is converted by Larq Compute Engine with float32 input and output "
            f"and no quantization choice. Received: io_type={spec.deploy.io_type}, quantization={spec.deploy.quantization}; "
            "set io_type: float32"
        )
    layout = spec.layout(root)
    target = load_target(spec.deploy.target)
    source = Path(source) if source is not None else source_model_path(spec, layout)
    out_dir = Path(out_dir) if out_dir is not None else layout.deploy
    model = load_model(source)
    dataset = load_dataset(spec)
    qat = not binary and is_quantization_aware(model)
    representative = None if qat or binary else representative_sample(dataset.x_train, spec.deploy.representative_samples, spec.data.seed)
    # Binarized (Larq) models: LCE's converter, float I/O; the deployed file keeps its usual name.
    data = convert_keras(model) if binary else convert_model(model, representative, spec.deploy.quantization, spec.deploy.io_type)
    tflite = parse_tflite(data, str(out_dir / INT8_MODEL_FILE))
    usage = reference_emulator(tflite, data).arena_usage()  # None for LCE models: RAM is checked by the firmware build
    Fit(target, len(data), arena_size(usage) if usage is not None else 0).check()
    info = {
        "source_model": str(source),
        "quantization": "binary (Larq Compute Engine)" if binary else spec.deploy.quantization,
        "io_type": "float32" if binary else spec.deploy.io_type,
        "quantization_aware": qat,
        "representative_samples": 0 if representative is None else len(representative),
        "size": len(data),
        "ops": list(tflite.op_names),
        "arena": None if usage is None else {"total": usage.total, "head": usage.head, "tail": usage.tail, "with_margin": arena_size(usage)},
        "target": target.name,
    }
    labels_path = write_text_atomic(out_dir / LABELS_FILE, "\n".join(dataset.class_names) + "\n") if dataset.class_names else None
    model_path = write_bytes_atomic(out_dir / INT8_MODEL_FILE, data)
    write_text_atomic(out_dir / DeployResult.convert, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return ConvertResult(
        model_path, labels_path, source, spec.deploy.quantization, spec.deploy.io_type, qat, len(data), tflite.op_names, usage
    )
