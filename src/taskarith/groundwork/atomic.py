"""Atomic artifact writes: temp file in the same folder, fsync, rename. Readers never see half a file.

Every temp file is ours, named `.NAME.PID.XXXXXX.tmp` beside NAME: libraries get bytes to serialize, never a
path, so none leaves a temp file of its own. A write killed midway leaves one such file; the next write of
NAME removes it once its PID is gone, and a run removes every one in its folder before it starts."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import TaskarithError, quote
from .input_files import check_not_input
from .lock import held_run_folder


def _refuse_symlinks(path: Path) -> None:
    """Refuse a symlink planted at the destination or, inside the run folder whose lock is held, at a folder on
    the way to it: the write would land wherever the link points."""
    target = Path(os.path.abspath(path))
    root = held_run_folder()
    inside = root is not None and target.is_relative_to(root)
    for part in [target, *(target.parents if inside else ())]:
        if part == root:
            break
        if part.is_symlink():
            raise TaskarithError(f"{part}: is a symlink; refusing to write through it")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync and rename it over `path`, else remove it.

    The temp file is created exclusively (mkstemp never follows a link) and reopened without following one."""
    path = Path(path)
    _refuse_symlinks(path)
    check_not_input(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise TaskarithError(f"{path.parent}: cannot write here ({e.strerror})") from e
    _umask = os.umask(0)
    os.umask(_umask)
    os.fchmod(fd, 0o666 & ~_umask)  # mkstemp makes 0600; artifacts get the usual file mode
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        fd = os.open(tmp_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)  # a rename replaces a link at `path` and never writes through it
        fsync_dir(path.parent)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise TaskarithError(f"{path}: write failed ({e.strerror}); the previous file is kept") from e
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid may still be running (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's live process, or not a pid we can judge: leave its file
    return True


def stale_entries(path: Path, suffix: str) -> list[os.DirEntry]:
    """The entries `.NAME.PID.…SUFFIX` beside `path` (NAME its name) left by writers whose process has died."""
    prefix, stale = f".{path.name}.", []
    with os.scandir(path.parent) as entries:
        for entry in entries:
            if not (entry.name.startswith(prefix) and entry.name.endswith(suffix)):
                continue
            pid = entry.name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                stale.append(entry)
    return stale


def _remove_stale_temps(path: Path) -> None:
    """Remove temp files of earlier writes of `path` whose writer process has died."""
    for entry in stale_entries(path, ".tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)  # unlinks a planted link itself, never its target


def fsync_dir(folder: Path) -> None:
    """Make the entries of `folder` (a rename into it) durable; best effort where folders cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_temp_files(folder: str | os.PathLike) -> None:
    """Remove the temp files of writes that were killed midway; only while no writer can be active."""
    for tmp in Path(folder).rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC), "wb") as f:
            f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Serialized in memory, then written like any artifact: given a path, safetensors would write through a
    temp file of its own that a kill leaves behind under a name no cleanup knows. A tensor that is not finite
    is refused."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import save

    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # every tensor written is finite: a NaN or Inf would only fail later, far from its cause
        raise TaskarithError(f"{path}: tensor {quote(bad)} holds NaN or Inf; nothing was written")
    try:
        data = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    except SafetensorError as e:
        raise TaskarithError(f"{path}: cannot serialize the tensors ({str(e).strip()})") from e
    write_bytes(path, data)
