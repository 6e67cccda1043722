"""Stage reuse keyed by content hashes.

A stage's key is everything its output depends on: the spec sections it reads
and the content digests of its upstream outputs. After a stage runs, its key and
the digest of what it wrote are stored beside its output; the next run reuses
the output when both still match, and recomputes otherwise (a changed spec, a
changed upstream artifact, or an output someone edited).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcuforge import __version__
from mcuforge.artifacts import write_json_atomic

STAMP = ".mcuforge-stage.json"


@dataclass(frozen=True)
class StageOutcome:
    name: str
    directory: Path
    digest: str
    reused: bool
    seconds: float


def digest_dir(directory: Path) -> str:
    """SHA-256 over every file's relative path and bytes (the stamp excluded)."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.name != STAMP):
        h.update(path.relative_to(directory).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def run_stage(name: str, directory: Path, key: dict[str, Any], action: Callable[[Path], Any]) -> StageOutcome:
    """Run `action(directory)` unless a previous run with the same key left an intact output."""
    directory = Path(directory)
    key = {"stage": name, "mcuforge": __version__, **key}
    key_text = json.dumps(key, sort_keys=True, default=str)
    stamp = directory / STAMP
    if stamp.is_file():
        stored = json.loads(stamp.read_text())
        if stored.get("key") == key_text and stored.get("output") == digest_dir(directory):
            return StageOutcome(name, directory, stored["output"], reused=True, seconds=0.0)
    started = time.perf_counter()
    action(directory)
    digest = digest_dir(directory)
    write_json_atomic(stamp, {"key": key_text, "output": digest})
    return StageOutcome(name, directory, digest, reused=False, seconds=time.perf_counter() - started)
