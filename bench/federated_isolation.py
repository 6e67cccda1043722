"""One benchmark row per process, and a reason whenever that process dies.

Several Flower simulations in one process (Ray started, shut down and started
again) ended the bench process silently under load, with no traceback and no
result, as it started its next simulation. So each row runs in a fresh spawned
process (`in_own_process`): the parent keeps the rows that finished, and a row
whose process dies comes back as a `RowFailed` that says why: the exception
and its traceback, a SystemExit's status (Flower's flwr_exit logs its message
through a logger the simulation silences), the signal that killed it (SIGKILL:
the kernel's out-of-memory killer or another process), and the last errors of
Ray's log for that process's driver (Ray's core worker ends the process with
`_exit` when it loses its raylet, printing nothing to the terminal). The child
enables faulthandler, so a native crash prints every thread's Python stack.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import signal
import traceback
from collections.abc import Callable
from pathlib import Path

RAY_LOG_LINES = 5  # how many of Ray's last error lines a failure quotes


class RowFailed(RuntimeError):
    """A row's process ended without a result; the message says how and why."""


def _child(connection, function: Callable, args: tuple) -> None:
    faulthandler.enable(all_threads=True)
    try:
        connection.send(("ok", function(*args)))
    except SystemExit as stop:
        connection.send(("error", f"SystemExit({stop.code!r}) from inside the row (Flower's flwr_exit, or sys.exit)\n"
                                  + traceback.format_exc()))
    except BaseException as error:  # noqa: BLE001  (the parent reports whatever ended the row)
        connection.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    finally:
        connection.close()


def ray_errors(ray_temp: Path, pid: int) -> list[str]:
    """The last error and fatal lines Ray logged for driver process `pid` (its sessions are named after the pid)."""
    lines = []
    for log in sorted(ray_temp.glob(f"session_*_{pid}/logs/python-core-driver-*_{pid}.log")):
        lines += [line.rstrip() for line in log.read_text(errors="replace").splitlines() if _severity(line) in ("E", "F")]
    return lines[-RAY_LOG_LINES:]


def _severity(line: str) -> str:
    """Ray's C++ log lines read `[date time,ms SEVERITY pid tid] ...`."""
    head = line.split("]", 1)[0].split()
    return head[2] if line.startswith("[") and len(head) >= 3 else ""


def death_reason(exitcode: int | None, pid: int, ray_temp: Path) -> str:
    """Why a process with this exit code ended without sending a result."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        why = {
            "SIGKILL": "killed by SIGKILL (the kernel's out-of-memory killer: see dmesg; or another process)",
            "SIGSEGV": "crashed with SIGSEGV (faulthandler printed every thread's stack to stderr)",
            "SIGABRT": "aborted with SIGABRT (faulthandler printed every thread's stack to stderr)",
        }.get(name, f"ended by {name}")
    else:
        why = f"exited with status {exitcode} without a result or a Python exception"
    logged = ray_errors(ray_temp, pid)
    return why + (f"; Ray's driver log for pid {pid} ends with: " + " | ".join(logged) if logged else f"; Ray logged no error for pid {pid}")


def in_own_process(function: Callable, *args, ray_temp: Path):
    """`function(*args)` run in a fresh spawned process; its result, or RowFailed saying why it has none.

    `function` and its arguments must be picklable (a module-level function); `ray_temp` is the
    Ray session directory the row uses (`<root>/.ray`), searched for the driver's last errors.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, args))
    process.start()
    sender.close()
    try:
        status, value = receiver.recv()
    except EOFError:
        process.join()
        raise RowFailed(f"the row's process (pid {process.pid}) {death_reason(process.exitcode, process.pid, ray_temp)}") from None
    process.join()
    if status == "error":
        raise RowFailed(f"the row's process (pid {process.pid}) raised {value}")
    return value
