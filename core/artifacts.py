"""Atomic artifact writing and the places artifacts live.

A stage writes into a fresh temporary sibling directory and swaps it in only
when everything succeeded, so a failed run never leaves a half-written stage
nor overwrites the last good one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def cache_root() -> Path:
    """Where mcuforge caches what is slow to make: $MCUFORGE_CACHE, else ~/.cache/mcuforge."""
    return Path(os.environ.get("MCUFORGE_CACHE") or Path.home() / ".cache" / "mcuforge")


def data_cache_dir() -> Path:
    """Cache for synthesized data (clips, features)."""
    return cache_root() / "data"


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; artifacts are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path | str, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path | str, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_output_dir(final: Path | str) -> Iterator[Path]:
    """Yield a temporary directory that replaces `final` only if the block succeeds.

    On an exception the temporary directory is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.staging."))
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = final.parent / f".{final.name}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        os.replace(final, previous)
    os.replace(staging, final)
    shutil.rmtree(previous, ignore_errors=True)


@contextlib.contextmanager
def rebuilt_dir(final: Path | str) -> Iterator[Path]:
    """Yield `final` emptied for a rebuild in place; on an exception it gets back exactly what it held.

    In place, not in a staging copy, so that files naming their own paths (a report
    naming its model) name the final ones and a rebuild with the same inputs gives
    the same bytes.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    previous = final.parent / f".{final.name}.before-rebuild"  # not atomic_output_dir's name: actions nest that inside
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        os.replace(final, previous)
    final.mkdir()
    try:
        yield final
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        if previous.exists():
            os.replace(previous, final)
        raise
    shutil.rmtree(previous, ignore_errors=True)
