"""A recipe's base or checkpoint named by hub id, read from the local Hugging Face cache without the network.

The cache keeps `models--owner--name/refs/main` (a commit hash), `snapshots/<hash>/` (one link per file) and
`blobs/` (the contents). Snapshot links are the one kind of link followed here, and only into that repo's own
`blobs/`: a planted link could otherwise publish any file with the merged model."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..groundwork.errors import TaskarithError, printable, quote

_ASCII_ID = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REF_LIMIT = 100  # bytes of refs/main read: a commit hash is 40


def _hub_id(name: str) -> bool:
    """Whether `name` is an `owner/name` or `name` hub id; only then may it become a path part."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not _ASCII_ID.fullmatch(name):  # older validate_repo_id let \w pass any Unicode letter
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _folder(path: Path, where: str) -> bool:
    """Whether the cache folder `path` is there; a link or other file in its place is refused, since a linked
    folder would move "inside blobs" anywhere."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode):
        raise TaskarithError(f"{where}: {path} is not a folder; a link is not followed")
    return True


def _commit(ref: Path, where: str) -> str | None:
    """The commit hash in refs/main, a regular file read without following a link or waiting on a FIFO."""
    try:
        fd = os.open(ref, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:  # a link fails with ELOOP
        raise TaskarithError(f"{where}: {ref}: cannot read ({e.strerror}); a link is not followed") from None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TaskarithError(f"{where}: {ref} is not a regular file")
        text = f.read(_REF_LIMIT).decode("ascii", "replace").strip()
    if not _COMMIT.fullmatch(text):
        raise TaskarithError(f"{where}: {ref} does not hold a commit hash")
    return text


def _blob(link: Path, blobs: str, where: str) -> Path:
    """The regular file directly inside `blobs` that `link` resolves to; any other target is refused."""
    try:
        target = os.path.realpath(link, strict=True)
        mode = os.stat(target).st_mode
    except OSError:
        raise TaskarithError(f"{where}: {printable(link)} is a dangling or looping link") from None
    if os.path.dirname(target) != blobs:
        raise TaskarithError(f"{where}: {printable(link)} links outside the model's blobs folder (to "
                             f"{printable(target)}); such a link is not followed")
    if not stat.S_ISREG(mode):
        raise TaskarithError(f"{where}: {printable(link)} links to {printable(target)}, not a regular file")
    return Path(target)


def _top_level_files(snapshot: Path, blobs: str, where: str) -> dict[str, Path]:
    try:
        entries = sorted(os.scandir(snapshot), key=lambda e: e.name)
    except OSError as e:
        raise TaskarithError(f"{where}: {snapshot}: cannot list ({e.strerror})") from None
    files = {}
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            continue  # only top-level files make up a model folder
        if entry.is_symlink():
            files[entry.name] = _blob(path, blobs, where)
        elif entry.is_file(follow_symlinks=False):
            files[entry.name] = path  # a cache that copies instead of linking
        else:
            raise TaskarithError(f"{where}: {printable(path)} is not a regular file")
    return files


def cached_snapshot(name: str, what: str) -> dict[str, Path] | None:
    """The top-level files of the cached hub model `name` ({file name: path of a regular file}), or None when
    `name` is not shaped like a hub id (so the caller treats it as a path). `what` ("base", "checkpoint") names
    the recipe entry in errors."""
    if not _hub_id(name):
        return None
    from huggingface_hub import constants

    where = f"{what} {quote(name)}"
    repo = Path(constants.HF_HUB_CACHE).expanduser() / ("models--" + name.replace("/", "--"))
    commit = None
    if _folder(repo, where) and _folder(repo / "refs", where):
        commit = _commit(repo / "refs" / constants.DEFAULT_REVISION, where)
    snapshot = repo / "snapshots" / commit if commit else None
    if snapshot is None or not (_folder(repo / "snapshots", where) and _folder(snapshot, where)):
        raise TaskarithError(f"{where}: not a folder, and not a model in the local Hugging Face cache")
    _folder(repo / "blobs", where)
    return _top_level_files(snapshot, os.path.realpath(repo / "blobs"), where)
