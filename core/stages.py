"""Stage reuse keyed by content hashes.

A stage's key is everything its output depends on: the spec sections it reads
and the content digests of its upstream outputs. After a stage runs, its key and
the digest of what it wrote are stored beside its output; the next run reuses
the output when both still match, and recomputes otherwise (a changed spec, a
changed upstream artifact, or an output someone edited).

The action rebuilds the stage's directory in place (see artifacts.rebuilt_dir);
a failing action gets the previous output and its stamp back as they were, so
the next run recomputes that stage alone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from mcuforge import __version__
from mcuforge.artifacts import rebuilt_dir, write_json_atomic
from mcuforge.errors import MCUForgeError
from mcuforge.results import Artifact

STAMP = ".mcuforge-stage.json"


R = TypeVar("R", bound=Artifact)


@dataclass(frozen=True)
class StageOutcome(Generic[R]):
    name: str
    directory: Path
    digest: str
    reused: bool
    seconds: float
    result: R


def digest_dir(directory: Path) -> str:
    """SHA-256 over every file's relative path and bytes (the stamp excluded)."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.name != STAMP):
        h.update(path.relative_to(directory).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def run_stage(
    name: str,
    directory: Path,
    key: dict[str, Any],
    action: Callable[[Path], R],
    result_type: type[R],
    on_run: Callable[[], None] = lambda: None,
) -> StageOutcome[R]:
    """Run `action(directory)` unless a previous run with the same key left an intact output; `on_run` just before it runs.

    The action writes its files into the directory and returns its typed result,
    which is saved beside them; the outcome carries the result loaded back from
    disk (so a reused and a fresh run hand on the same object).
    """
    directory = Path(directory)
    key = {"stage": name, "mcuforge": __version__, **key}
    key_text = json.dumps(key, sort_keys=True, default=str)
    stamp = directory / STAMP
    if stamp.is_file():
        stored = json.loads(stamp.read_text())
        if stored.get("key") == key_text and stored.get("output") == digest_dir(directory):
            try:
                return StageOutcome(name, directory, stored["output"], True, 0.0, result_type.load(directory))
            except MCUForgeError:
                pass  # written before its result had this form (an older mcuforge): recompute
    on_run()
    started = time.perf_counter()
    with rebuilt_dir(directory) as rebuilt:
        action(rebuilt).save(rebuilt)
        digest = digest_dir(rebuilt)
        write_json_atomic(rebuilt / STAMP, {"key": key_text, "output": digest})
    return StageOutcome(name, directory, digest, False, time.perf_counter() - started, result_type.load(directory))
