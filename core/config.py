"""Typed YAML: dataclasses filled from plain mappings, every field validated.

Every dataclass field may carry metadata `min`, `max` (inclusive bounds),
`min_exclusive`, `choices` and `help`. An unknown key, a wrong type or a value
out of range raises MCUForgeError naming the field, the value and what is
allowed, e.g. ``train.epochs: expected an integer >= 1. Received: 0``.
The spec, the boards, the targets, the typed results and each stage's options use it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any

from mcuforge.errors import MCUForgeError


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
        sections = [a for a in args if dataclasses.is_dataclass(a)]
        if isinstance(value, dict) and len(sections) == 1:
            return _coerce(value, sections[0], where)  # an optional section: its own field's error, not "a mapping or null"
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
