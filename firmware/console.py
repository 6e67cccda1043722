"""The console protocol every firmware application speaks (firmware/app/console.h), and its one parser.

Each fact is one line "MF <key> <word> ...": positional words, then key=value
words; numbers in decimal, exact values (tensors, doubles) in hex. The
standard app and the demos print the same lines for what they share (model,
arena, errors, the end line) and their own keys beside them; the board's
startup code prints "MF fault <name>" when the core faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mcuforge.deploy.tflite_model import NUMPY_DTYPES
from mcuforge.errors import MCUForgeError

PREFIX = "MF"
END_KEY = "done"


@dataclass(frozen=True)
class ConsoleLine:
    """One "MF <key> ..." line: its key and the words after it."""

    key: str
    words: tuple[str, ...]

    @property
    def fields(self) -> dict[str, str]:
        """The key=value words."""
        return dict(word.split("=", 1) for word in self.words if "=" in word)


@dataclass
class RunResult:
    """What one run of an application reported; the same for QEMU and a board's console."""

    model: str = ""
    input_source: str = ""
    arena_used: int = 0
    outputs: list[list[np.ndarray]] = field(default_factory=list)
    top: list[list[tuple[int, str, int]]] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)  # per vector, in vector order
    done: bool = False
    error: str = ""
    text: str = ""
    lines: list[ConsoleLine] = field(default_factory=list)  # every protocol line, in order

    def lines_of(self, key: str) -> list[ConsoleLine]:
        return [line for line in self.lines if line.key == key]


def console_lines(text: str) -> list[ConsoleLine]:
    """The protocol lines of a console's output; anything else (a board's boot chatter) is skipped."""
    lines = []
    for raw in text.splitlines():
        words = raw.split()
        if len(words) >= 2 and words[0] == PREFIX:
            lines.append(ConsoleLine(words[1], tuple(words[2:])))
    return lines


def _grow(rows: list, index: int) -> list:
    while len(rows) <= index:
        rows.append([])
    return rows[index]


def parse_run(text: str) -> RunResult:
    """The RunResult of an application's console output.

    Raises MCUForgeError when a run that reached its end line lacks a vector's
    cycles line (or has two), so per-vector counts never shift silently.
    """
    result = RunResult(text=text, lines=console_lines(text))
    cycles: dict[int, int] = {}
    for line in result.lines:
        key, args = line.key, line.words
        if key == "model":
            result.model = args[0]
        elif key == "input":
            result.input_source = args[0]
        elif key == "arena":
            result.arena_used = int(line.fields["used"])
        elif key == "output":
            vector, index, dtype, dims, payload = int(args[0]), int(args[1]), args[2], args[3], args[4] if len(args) > 4 else ""
            shape = tuple(int(d) for d in dims.split("x")) if dims else ()
            array = np.frombuffer(bytes.fromhex(payload), dtype=NUMPY_DTYPES[dtype.lower()]).reshape(shape)
            _grow(result.outputs, vector).insert(index, array)
        elif key == "top":
            _grow(result.top, int(args[0])).append((int(args[2]), args[3], int(args[4])))
        elif key == "cycles":
            vector = int(args[0])
            if vector in cycles:
                raise MCUForgeError(f"console: vector {vector} reported two cycles lines ({cycles[vector]} and {args[1]})")
            cycles[vector] = int(args[1])
        elif key == END_KEY:
            result.done = True
        elif key == "error":
            result.error = " ".join(args)
        elif key == "fault":
            result.error = f"fault {' '.join(args)}"
    missing = [vector for vector in range(len(result.outputs)) if vector not in cycles]
    if result.done and not result.error and missing:
        raise MCUForgeError(f"console: vector {missing[0]} reported its outputs but no cycles line: the run's cycle counts cannot be matched to its vectors")
    result.cycles = [cycles[vector] for vector in sorted(cycles)]
    return result


def check_run(result: RunResult, status: int, stderr: str, what: str) -> RunResult:
    """The result of a finished run, or MCUForgeError saying why `what` failed.

    A run succeeds when the program exited 0 after printing its end line and no error or fault.
    """
    if status == 0 and result.done and not result.error:
        return result
    if result.error:
        reason = result.error
    elif status == 0:
        last = result.text.strip().splitlines()[-1] if result.text.strip() else "nothing"
        reason = f"the program exited with status 0 without its end line ({PREFIX} {END_KEY}); the last line it printed: {last}"
    else:
        reason = stderr.strip() or f"exit status {status}"
    raise MCUForgeError(f"{what}: {reason}")
