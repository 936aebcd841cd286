"""One writer per run folder. The kernel drops an flock when its holder dies, so a stale lock from a
killed run is taken over safely, with no pid guessing."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import stat
from pathlib import Path
from typing import Callable, Iterator

import filelock

from .errors import TaskarithError

# the run folder whose lock this context holds: writes below it must not pass through a planted symlink
_held: contextvars.ContextVar[Path | None] = contextvars.ContextVar("taskarith_run_folder", default=None)


def held_run_folder() -> Path | None:
    """The absolute run folder whose lock is held here, or None outside a run."""
    return _held.get()


def _claim(path: Path) -> Callable[[int], None]:
    """The check and pid write run on the flocked descriptor; raising here makes filelock let go of it."""
    def on_acquired(fd: int) -> None:
        st = os.fstat(fd)
        # a second link would make the pid write change another file too
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
            raise TaskarithError(f"{path}: not a regular file of this user with one link; refusing it as the run "
                                 f"folder's lock (remove it if no taskarith process uses this folder)")
        # moved aside and made anew between filelock's open and its flock: filelock only notices an unlinked inode
        if not _same_file(st, path):
            raise TaskarithError(f"{path.parent}: the run folder's lock changed while it was taken; try again")
        # only the holder of the flock may clear the file: truncating earlier would wipe a live holder's pid
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    return on_acquired


def _acquire(folder: Path) -> filelock.AcquireReturnProxy:
    path = folder / ".lock"
    # filelock opens with O_NOFOLLOW (a planted symlink is refused) and O_NONBLOCK (a planted FIFO cannot hang
    # the open), never truncates the holder's pid, and keeps the file so every contender flocks one inode;
    # mode: as before, no one else may write the pid
    lock = filelock.FileLock(path, mode=0o644, blocking=False, preserve_lock_file=True, on_acquired=_claim(path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return lock.acquire()
    except filelock.Timeout:  # an OSError too: caught first
        raise TaskarithError(f"{folder}: another taskarith process (pid {_holder(path)}) is using this run "
                             f"folder") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise TaskarithError(f"{path}: is a symlink; refusing it as the run folder's lock") from e
        raise TaskarithError(f"{folder}: cannot create the run folder's lock ({e.strerror})") from e


def _holder(path: Path) -> str:
    """The pid the holder wrote, read without following a link or waiting on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            pid = os.read(fd, 32).decode(errors="replace").strip()
        finally:
            os.close(fd)
    except OSError:
        return "unknown"
    return pid if pid.isascii() and pid.isdigit() else "unknown"  # a planted file's text stays out of the error


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
    with _acquire(folder):  # leaving releases the flock and closes the descriptor
        token = _held.set(root)
        try:
            yield
        except BaseException:
            with contextlib.suppress(OSError):
                _remove_if_untouched(root, created)
            raise
        finally:
            _held.reset(token)


@contextlib.contextmanager
def acting_for(folder: str | Path) -> Iterator[None]:
    """Write below a run folder whose lock the run's driver holds (in a Ray worker of that run): every write
    gets the same symlink checks as in the driver, without taking the lock the driver holds."""
    token = _held.set(Path(os.path.abspath(folder)))
    try:
        yield
    finally:
        _held.reset(token)


def _same_file(st: os.stat_result, path: Path) -> bool:
    try:
        return os.path.samestat(os.lstat(path), st)
    except FileNotFoundError:
        return False
