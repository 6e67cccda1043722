"""Keep TensorFlow's start-up log lines off the console (the CLI lets them through with --verbose).

TensorFlow's C++ side logs through absl before anything can configure it
(the oneDNN notice, "Could not find cuda drivers", "failed call to cuInit"),
so TF_CPP_MIN_LOG_LEVEL does not silence it. The CLI routes file descriptor 2
through `StderrFilter`, which drops those lines and passes every other byte on
at once (a partial line is held only while it could still be one of them, so
progress bars and prompts are not delayed); `quiet_python_logs` does the same
for the Python-side absl/TensorFlow loggers and warnings.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import warnings

# Whole lines dropped: absl's pre-init banner, info and warning lines in absl's
# C++ format (I0000 00:00:1795855175.321632   10915 port.cc:153] ...), and its
# error lines about CUDA on a machine without a GPU driver.
NOISE = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] .*"
    r"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] .*(cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS).*)\r?\n"
)
_BANNER = "WARNING: All log messages before absl::InitializeLog()"
_ABSL_PREFIX = re.compile(r"[IWE]\d{0,4}")
NOISY_MODULES = r"(tensorflow|tf_keras|tensorflow_model_optimization|keras|absl)(\.|$)"


def could_be_noise(partial: str) -> bool:
    """True while an unfinished line may still turn out to be a NOISE line (so it is held back)."""
    if _BANNER.startswith(partial) or partial.startswith(_BANNER):
        return True
    head = partial[:5]
    return _ABSL_PREFIX.fullmatch(head) is not None and (len(partial) <= 5 or partial[5] == " ")


class StderrFilter:
    """Route file descriptor 2 (Python's and C's writes alike) through a thread that drops NOISE lines."""

    def __enter__(self) -> StderrFilter:
        sys.stderr.flush()
        self._console = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        sys.stderr.flush()
        os.dup2(self._console, 2)  # closes our write end: the pump sees end of file (unless a child still holds it)
        self._thread.join(timeout=5)
        os.close(self._console)

    def _pump(self, read_end: int) -> None:
        pending = ""  # the start of a line that may still be noise
        passing = False  # the current line was found not to be noise: its bytes go straight through
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                out = []
                for piece in re.split(r"(?<=\n)", chunk.decode("utf-8", errors="replace")):
                    if not piece:
                        continue
                    if passing:
                        out.append(piece)
                    else:
                        pending += piece
                        if pending.endswith("\n"):
                            out.append("" if NOISE.fullmatch(pending) else pending)
                            pending = ""
                        elif not could_be_noise(pending):
                            out.append(pending)
                            pending, passing = "", True
                    if piece.endswith("\n"):
                        passing = False
                os.write(self._console, "".join(out).encode())
            if pending and not NOISE.fullmatch(pending + "\n"):
                os.write(self._console, pending.encode())


def quiet_python_logs() -> None:
    """Python-side noise: absl's and TensorFlow's loggers below ERROR, and warnings raised inside TensorFlow/Keras."""
    for name in ("absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=NOISY_MODULES)
