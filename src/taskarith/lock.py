"""One writer per run folder. The kernel drops an flock when its holder dies, so a stale lock from a
killed run is taken over safely, with no pid guessing."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import Iterator

from .errors import TaskarithError

# the run folder whose lock this context holds: writes below it must not pass through a planted symlink
_held: contextvars.ContextVar[Path | None] = contextvars.ContextVar("taskarith_run_folder", default=None)


def held_run_folder() -> Path | None:
    """The absolute run folder whose lock is held here, or None outside a run."""
    return _held.get()


def _open_lock(folder: Path) -> int:
    path = folder / ".lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a .lock planted as a symlink must not lead the pid write to another file;
        # O_NONBLOCK: a .lock planted as a FIFO must not hang the open
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise TaskarithError(f"{path}: is a symlink; refusing it as the run folder's lock") from e
        raise TaskarithError(f"{folder}: cannot create the run folder's lock ({e.strerror})") from e
    st = os.fstat(fd)
    # a second link would make the pid write change another file too
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
        os.close(fd)
        raise TaskarithError(f"{path}: not a regular file of this user with one link; refusing it as the run "
                             f"folder's lock (remove it if no taskarith process uses this folder)")
    return fd


def _missing(folder: Path) -> list[Path]:
    """The folder and those of its ancestors that do not exist yet, deepest first."""
    missing = []
    for part in [folder, *folder.parents]:
        if os.path.lexists(part):
            break
        missing.append(part)
    return missing


def _remove_if_untouched(folder: Path, created: list[Path]) -> None:
    """After a failure, remove what taking the lock created, if nothing but empty folders was written since."""
    if not created:
        return
    for root, dirs, files in os.walk(folder, topdown=False):  # never follows a link: a link is kept, and all with it
        if any(Path(root, f) != folder / ".lock" for f in files) or any(Path(root, d).is_symlink() for d in dirs):
            return
    for root, dirs, _ in os.walk(folder, topdown=False):
        for d in dirs:
            os.rmdir(Path(root, d))
    (folder / ".lock").unlink(missing_ok=True)
    for part in created:
        with contextlib.suppress(OSError):
            os.rmdir(part)


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold the run folder's lock. A failure before anything was written removes the lock and the folders
    this call created, so a mistyped config leaves nothing behind."""
    folder = Path(folder)
    root = Path(os.path.abspath(folder))
    created = _missing(root)
    fd = _open_lock(folder)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise TaskarithError(f"{folder}: another taskarith process (pid {holder}) is using this run folder")
        if not _same_file(fd, folder / ".lock"):  # removed or replaced between our open and our flock
            raise TaskarithError(f"{folder}: the run folder's lock changed while it was taken; try again")
        # only the holder of the flock may clear the file: truncating earlier would wipe a live holder's pid
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        token = _held.set(root)
        try:
            yield
        except BaseException:
            with contextlib.suppress(OSError):
                _remove_if_untouched(root, created)
            raise
        finally:
            _held.reset(token)
    finally:
        os.close(fd)  # closing releases the flock


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.lstat(path)
    except FileNotFoundError:
        return False
    st = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino)
