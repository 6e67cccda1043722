"""Progress of long work: a bar on a terminal, one plain line per stage, epoch or step otherwise.

So `mcuforge run SPEC > log 2>&1` and CI logs show what is happening, while a
person at a terminal sees bars. One helper for the pipeline, the trainer (as a
Keras callback, see mcuforge.train.trainer) and the compress steps.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO


class Progress:
    """Where progress goes. `quiet()` shows nothing (library calls and tests)."""

    def __init__(self, stream: TextIO | None, terminal: bool) -> None:
        self.stream = stream
        self.terminal = terminal
        self._bars = None  # the one live rich display on a terminal; nested tasks add bars to it

    @classmethod
    def quiet(cls) -> Progress:
        return cls(None, False)

    @classmethod
    def to(cls, stream: TextIO = sys.stderr) -> Progress:
        """Bars when `stream` is a terminal, lines when it is a file or a pipe."""
        return cls(stream, stream.isatty())

    def line(self, text: str) -> None:
        if self.stream is not None:
            print(text, file=self.stream, flush=True)

    @contextlib.contextmanager
    def task(self, what: str, total: int) -> Iterator[Callable[[str], None]]:
        """Yield `advance(status)`, called once per unit of work (an epoch, a step)."""
        if self.stream is None:
            yield lambda status: None
            return
        if not self.terminal:
            done = 0

            def advance_line(status: str) -> None:
                nonlocal done
                done += 1
                self.line(f"{what} {done}/{total} {status}".rstrip())

            yield advance_line
            return
        yield from self._bar(what, total)

    def _bar(self, what: str, total: int) -> Iterator[Callable[[str], None]]:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bars

        owner = self._bars is None
        if owner:
            self._bars = Bars(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(), console=Console(file=self.stream),
            )  # fmt: skip
            self._bars.start()
        bars = self._bars
        task = bars.add_task(what, total=total, status="")
        try:
            yield lambda status: bars.update(task, advance=1, status=status)
        finally:
            if owner:
                bars.stop()
                self._bars = None
            else:
                bars.remove_task(task)
