"""Atomic artifact writes: temp file in the same folder, fsync, rename. Readers never see half a file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import TaskarithError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync and rename it over `path`, else remove it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise TaskarithError(f"{path.parent}: cannot write here ({e.strerror})") from e
    os.close(fd)
    tmp_path = Path(tmp)
    _umask = os.umask(0)
    os.umask(_umask)
    os.chmod(tmp_path, 0o666 & ~_umask)  # mkstemp makes 0600; artifacts get the usual file mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise TaskarithError(f"{path}: write failed ({e.strerror}); the previous file is kept") from e
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


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
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        except SafetensorError as e:
            # safetensors reports a failed write (a full disk) as its own type: treat it as the OSError it is
            raise OSError(errno.EIO, str(e).strip()) from e
