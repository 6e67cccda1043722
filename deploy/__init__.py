"""deploy/: int8 conversion, TFLite Micro C arrays, the TFLM host emulator and model reports.

The public types and helpers are re-exported here; the stage functions live in
modules of the same name (mcuforge.deploy.convert.convert, .export.export,
.emulate.emulate, .evaluate.evaluate), which a re-export would shadow.
TensorFlow and the interpreters are imported only inside the functions that
need them.
"""

from mcuforge.deploy.carray import array_declaration, array_definition
from mcuforge.deploy.convert import ConvertResult, convert_model
from mcuforge.deploy.emulate import EmulateResult
from mcuforge.deploy.evaluate import EvaluateResult
from mcuforge.deploy.export import ExportResult
from mcuforge.deploy.golden import GoldenResult, record, verify
from mcuforge.deploy.report import ModelReport, build_report, write_report
from mcuforge.deploy.targets import Fit, Target, load_target, target_names
from mcuforge.deploy.tflite_model import TFLiteModel, parse_tflite, read_tflite
from mcuforge.deploy.tflm import ArenaUsage, Emulator

__all__ = [
    "ArenaUsage",
    "ConvertResult",
    "EmulateResult",
    "Emulator",
    "EvaluateResult",
    "ExportResult",
    "Fit",
    "GoldenResult",
    "ModelReport",
    "TFLiteModel",
    "Target",
    "array_declaration",
    "array_definition",
    "build_report",
    "convert_model",
    "load_target",
    "parse_tflite",
    "read_tflite",
    "record",
    "target_names",
    "verify",
    "write_report",
]
