"""What a command shows on the terminal: its lines, whose parts may come from a file, printed with control
characters escaped; and, once it starts computing, no library printing over them.

Nothing here imports torch or transformers at import time: `--help`, the listings and the checks that fail
on bad input stay quick. A command that computes calls `start_computing()` after those checks."""

from __future__ import annotations

import typer

from ..groundwork.errors import printable

# the settings of the process itself are the `taskarith` program's (main() claims them), not those of a
# host process that runs a command in-process
_process = {"owned": False}


def echo(text: object) -> None:
    """Print one line to stdout: control characters are shown escaped, never obeyed."""
    typer.echo(printable(text))


def warn(text: object) -> None:
    """Print one line to stderr, escaped as `echo` does."""
    typer.echo(printable(text), err=True)


def own_process() -> None:
    """This process is the `taskarith` program: commands that compute apply its process settings."""
    _process["owned"] = True


def start_computing() -> None:
    """Quiet transformers' load reports and progress bars (they would bury the one-line messages) and, in the
    `taskarith` program, apply the process settings every worker of a run repeats (groundwork/resources.py).
    Called before the command's first computation, so every number is computed under them."""
    from transformers.utils import logging as hf_logging

    if _process["owned"]:
        from ..groundwork.resources import apply_process_settings

        apply_process_settings()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
