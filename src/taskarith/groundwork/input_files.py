"""The files a command reads as its inputs, so that no write of the same command lands on one of them.

A CLI command (or an API call) runs inside `command_scope()`; readers of user-named inputs (model folders,
task vectors, recipe inputs, pooled results) note them, and every atomic write checks its destination first.
Files are compared by device and inode, so another spelling of a path or a hard link is caught too. Outside a
scope nothing is noted: a notebook may load a vector and later save over it on purpose."""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from pathlib import Path
from typing import Iterator, Sequence

from .errors import TaskarithError

_inputs: contextvars.ContextVar[set[tuple[int, int]] | None] = contextvars.ContextVar("taskarith_inputs",
                                                                                       default=None)


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """Track inputs for one command; a nested scope shares the outer one's."""
    if _inputs.get() is not None:
        yield
        return
    token = _inputs.set(set())
    try:
        yield
    finally:
        _inputs.reset(token)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def note_input(path: str | os.PathLike[str]) -> None:
    """Record a file read as input, or every regular file directly inside a folder read as one (a model's
    weights, config and tokenizer). Links are not followed: a write never goes through one anyway."""
    noted = _inputs.get()
    if noted is None:
        return
    try:
        st = os.lstat(path)
    except OSError:
        return  # not there: the reader names that
    noted.add(_identity(st))
    if stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError), os.scandir(path) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    noted.add(_identity(entry.stat(follow_symlinks=False)))


def check_not_input(path: str | os.PathLike[str]) -> None:
    """Refuse to write `path` when it is (a link to, or another name of) a file this command reads."""
    noted = _inputs.get()
    if not noted:
        return
    try:
        st = os.stat(path)
    except OSError:
        return  # a new file cannot be an input
    if _identity(st) in noted:
        raise TaskarithError(f"{Path(path)}: is an input of this command; write the output to another path")


def refuse_repeats(paths: Sequence[str | os.PathLike], what: str) -> None:
    """Refuse a file given twice among a command's inputs, under any spelling or as a link: merged twice, it
    would count double without a word."""
    seen: dict[tuple[int, int], str | os.PathLike] = {}
    for path in paths:
        try:
            key = _identity(os.stat(path))
        except OSError:
            continue  # the reader names a missing file
        if key in seen:
            raise TaskarithError(f"{what} {Path(seen[key])} and {Path(path)} are the same file; give each input once")
        seen[key] = path
