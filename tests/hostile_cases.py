"""Hostile inputs: planted symlinks and special files, YAML bombs, path-escaping names, terminal escapes.

The tables in test_hostile_*.py, in the style of the test_bad_*.py tables: each case builds its input in a fresh
folder and returns CLI arguments or a Python call; the error must be one printable line of bounded length with exit
code 2, must come within its CPU budget and a wall-clock deadline (a FIFO or a bomb would otherwise hang), and files
present before must be unchanged. This module holds what the tables share: builders, the case and its check.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.groundwork.errors import TaskarithError
from taskarith.vectors import TaskVector

from cli_cases import Ctx, _write

# --- builders --------------------------------------------------------------------------------------------

def _vectors(folder: Path, task: str = "t") -> list[str]:
    meta = {"base_model": "m", "base_hash": "0" * 64, "paradigm": "attention", "preset": "attention"}
    paths = []
    for i in range(2):
        path = folder / f"v{i}.safetensors"
        TaskVector({"w": torch.full((4,), float(i + 1))}, {**meta, "task": f"{task}{i}"}).save(path)
        paths.append(str(path))
    return paths


# were the file read as a valid config, this override would fail validation, not run the default model
NEVER_RUN = ["--set", "train.steps=0"]


def _yaml(c: Ctx, text: str) -> list[str]:
    return ["run", str(_write(c.tmp / "c.yaml", text.encode())), *NEVER_RUN]


TWO_ROWS = b"text,label\nwhat city,a\nfree win,b\n"


def _task_file(c: Ctx, name: str, content: bytes = TWO_ROWS) -> list[str]:
    return c.finetune_args("--task", str(_write(c.tmp / name, content)))


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _absent(*paths: Path) -> None:
    assert not any(os.path.lexists(p) for p in paths), paths


# --- the check -------------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str] | Callable[[], Any]]
    fragment: str
    check: Callable[[Ctx], None] | None = None
    # CPU time allowed: unlike wall time it does not grow when other work shares the machine
    seconds: float = 10.0


def _snapshot(folder: Path) -> dict[str, str]:
    """Digests of the regular files below `folder`; special files are never opened."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if stat.S_ISREG(p.lstat().st_mode)}


DEADLINE = 60.0  # wall seconds: a command that blocks (on a FIFO) fails its case instead of hanging the session


def _raise_deadline(*_):
    raise TimeoutError("the command blocked")


# a progress bar's redrawn line (counts or bytes: 3/8, 0.00/242k), from work done before the error
_PROGRESS = re.compile(r"\| *[\d.]+[kMGT]?/[\d.]+[kMGT]? \[")


def _one_error(stderr: str) -> str:
    lines = [line for line in re.split(r"[\r\n]", stderr) if line.strip() and not _PROGRESS.search(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert lines[0].isprintable(), lines[0]  # no escape sequence reaches the terminal
    assert len(lines[0]) <= 520, f"{len(lines[0])} characters"
    return lines[0]


def check_hostile_input(case: Case, ctx: Ctx) -> None:
    """Run `case` in `ctx` under a deadline: one short printable error line with the fragment, files unchanged."""
    tmp_path = ctx.tmp
    ctx.mp.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    ctx.mp.chdir(tmp_path)
    target = case.setup(ctx)
    before = _snapshot(tmp_path)

    old = signal.signal(signal.SIGALRM, _raise_deadline)
    signal.setitimer(signal.ITIMER_REAL, DEADLINE)
    started = time.process_time()
    try:
        if callable(target):
            with pytest.raises(TaskarithError) as info:
                target()
            message = "error: " + str(info.value)
            _one_error(message)
        else:
            result = CliRunner().invoke(app, target)
            assert result.exit_code == 2, (result.output, result.exception)
            message = _one_error(result.stderr)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.process_time() - started < case.seconds
    assert case.fragment in message, message

    after = _snapshot(tmp_path)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"changed or removed by a failed command: {changed}"
    if case.check is not None:
        case.check(ctx)
