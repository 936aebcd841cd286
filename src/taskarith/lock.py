"""One writer per run folder. The kernel drops an flock when its holder dies, so a stale lock from a
killed run is taken over safely, with no pid guessing."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from .errors import TaskarithError


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise TaskarithError(f"{folder}: cannot create the run folder's lock ({e.strerror})") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise TaskarithError(f"{folder}: another taskarith process (pid {holder}) is using this run folder")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
