"""The `mcuforge` command: a thin layer over each stage's library functions.

Each stage registers its commands from its own `cli_*.py` module; those modules
import TensorFlow only inside command bodies, so `mcuforge --help` is instant.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

import typer

from mcuforge.errors import MCUForgeError
from mcuforge.tf_logs import StderrFilter, quiet_python_logs

COMMAND_MODULES = (
    "mcuforge.train.cli",
    "mcuforge.cli_federate",
    "mcuforge.compress.cli",
    "mcuforge.deploy.cli",
    "mcuforge.deploy.cli_edge",
    "mcuforge.firmware.cli_firmware",
    "mcuforge.firmware.cli_engine",
    "mcuforge.firmware.cli_demo",
    "mcuforge.cli_pipeline",
)

app = typer.Typer(
    name="mcuforge",
    help="TinyML deployment pipeline: train -> compress -> deploy -> firmware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# What the global options set up for one command, closed when it ends.
_command_scope = contextlib.ExitStack()


@app.callback()
def global_options(
    verbose: bool = typer.Option(False, "--verbose", help="also show TensorFlow's and CUDA's start-up log lines and warnings"),
) -> None:
    """Options for every command: they go before its name (`mcuforge --verbose train SPEC`)."""
    if not verbose:
        quiet_python_logs()
        _command_scope.enter_context(StderrFilter())


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console entry point: user errors print one line and exit with status 2."""
    try:
        with _command_scope:
            app()
    except MCUForgeError as exc:
        _fail(str(exc))
    except OSError as exc:
        if exc.filename is None:
            raise
        # a path the user passed that cannot be read or written (a missing folder, no permission, a full disk)
        _fail(f"{exc.strerror}: {exc.filename}. Check the path and its permissions, or pass another one")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    sys.exit(2)
