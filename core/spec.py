"""Pipeline specs: YAML loaded into typed, validated dataclasses.

Every dataclass field may carry metadata `min`, `max` (inclusive bounds),
`min_exclusive`, `choices` and `help`. An unknown key, a wrong type or a value
out of range raises MCUForgeError naming the field, the value and what is
allowed, e.g. ``train.epochs: expected an integer >= 1. Received: 0``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mcuforge.errors import MCUForgeError
from mcuforge.layout import BuildLayout


def spec_field(default: Any = dataclasses.MISSING, *, help: str = "", **rules: Any) -> Any:
    """A dataclass field with validation rules (min, max, min_exclusive, choices)."""
    kwargs: dict[str, Any] = {"metadata": {"help": help, **rules}}
    if isinstance(default, (list, dict)):
        kwargs["default_factory"] = lambda: type(default)(default)
    elif default is not dataclasses.MISSING:
        kwargs["default"] = default
    return field(**kwargs)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    return str(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except MCUForgeError:
                continue
        raise MCUForgeError(f"{where}: expected {_describe(tp)}. Received: {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise MCUForgeError(f"{where}: expected a mapping. Received: {value!r}")
        return parse_dataclass(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(tp)
            return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            return dict(value)
    elif tp is Any:
        return value
    raise MCUForgeError(f"{where}: expected {_describe(tp)}. Received: {value!r}")


def _check_rules(value: Any, rules: dict, where: str) -> None:
    if value is None:
        return
    choices = rules.get("choices")
    values = value if isinstance(value, list) else [value]
    if choices is not None:
        for v in values:
            if v not in choices:
                raise MCUForgeError(f"{where}: expected one of {', '.join(map(str, choices))}. Received: {v!r}")
    lo, hi, lo_ex = rules.get("min"), rules.get("max"), rules.get("min_exclusive")
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        bounds = []
        if lo is not None:
            bounds.append(f">= {lo}")
        if lo_ex is not None:
            bounds.append(f"> {lo_ex}")
        if hi is not None:
            bounds.append(f"<= {hi}")
        if (lo is not None and v < lo) or (lo_ex is not None and v <= lo_ex) or (hi is not None and v > hi):
            raise MCUForgeError(f"{where}: expected a value {' and '.join(bounds)}. Received: {v!r}")


def parse_dataclass(cls: type, data: dict, where: str = "") -> Any:
    """Build `cls` from a mapping, validating every field; `where` prefixes error paths."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MCUForgeError(f"{where or cls.__name__}: expected a mapping. Received: {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise MCUForgeError(
            f"{prefix}{unknown[0]}: unknown key. Allowed keys{' in ' + where if where else ''}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise MCUForgeError(f"{path}: required key is missing")
            continue
        value = _coerce(data[name], hints[name], path)
        _check_rules(value, dict(f.metadata), path)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain YAML/JSON-ready data; parse_dataclass inverts it."""
    return dataclasses.asdict(obj)


# ---------------------------------------------------------------------------
# The spec itself. Data-set, model and compression-step options are mappings
# validated by their owners (train.datasets, train.zoo, compress) at load time.

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class DataSpec:
    dataset: str = spec_field(help="digits, keywords, vibration, gestures, npz or wav_folder")
    seed: int = spec_field(0, min=0, help="seed for splits, synthesis and augmentation")
    options: dict = spec_field({}, help="data-set specific options")


@dataclass(frozen=True)
class ModelSpec:
    arch: str = spec_field(help="a zoo architecture")
    width: float = spec_field(1.0, min_exclusive=0.0, max=8.0, help="width multiplier")
    options: dict = spec_field({}, help="architecture specific options")


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = spec_field(20, min=1, max=10000)
    batch_size: int = spec_field(64, min=1, max=65536)
    optimizer: str = spec_field("adam", choices=("adam", "sgd", "rmsprop"))
    learning_rate: float = spec_field(1e-3, min_exclusive=0.0, max=10.0)
    lr_schedule: str = spec_field("cosine", choices=("constant", "cosine", "step"))
    seed: int = spec_field(0, min=0)


@dataclass(frozen=True)
class CompressSpec:
    steps: list[str] = spec_field(["distill", "prune", "quantize"], help="ordered compression steps")
    max_accuracy_drop: float | None = spec_field(None, min=0.0, max=1.0)
    options: dict = spec_field({}, help="per-step options, keyed by step name")


@dataclass(frozen=True)
class DeploySpec:
    target: str = spec_field("cortex-m4-256k", help="a target from deploy/targets")
    quantization: str = spec_field("int8", choices=("int8", "int16x8"))
    io_type: str = spec_field("int8", choices=("int8", "float32"))
    representative_samples: int = spec_field(200, min=1, max=100000)


@dataclass(frozen=True)
class Spec:
    name: str = spec_field(help="lower-case identifier; outputs go to build/<name>/")
    data: DataSpec = spec_field()
    model: ModelSpec = spec_field()
    train: TrainSpec = spec_field(TrainSpec())
    compress: CompressSpec = spec_field(CompressSpec())
    deploy: DeploySpec = spec_field(DeploySpec())

    def layout(self, root: Path | str = "build") -> BuildLayout:
        return BuildLayout.of(self.name, root)

    def build_dir(self, root: Path | str = "build") -> Path:
        return self.layout(root).base


def parse_spec(data: Any, source: str = "spec") -> Spec:
    """Validate a spec mapping, including the data-set and model options."""
    spec = parse_dataclass(Spec, data)
    if not NAME_PATTERN.match(spec.name):
        raise MCUForgeError(
            f"name: expected lower-case letters, digits, '-' or '_' (at most 64). Received: {spec.name!r}"
        )
    from mcuforge.compress.pipeline import parse_recipe
    from mcuforge.train import datasets, zoo

    datasets.parse_options(spec.data.dataset, spec.data.options)
    zoo.check_arch(spec.model.arch, spec.model.options)
    parse_recipe(spec.compress, spec.model.arch)
    return spec


def load_spec(path: Path | str) -> Spec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        raise MCUForgeError(f"spec file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MCUForgeError(f"{path}: not valid YAML ({exc})") from None
    return parse_spec(data, str(path))
