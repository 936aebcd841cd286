"""Hostile paths: planted symlinks and locks, special files, path-escaping names, folders of failed runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import CliRunner

from taskarith.groundwork.atomic import write_json
from taskarith.cli.app import app
from taskarith.data import load_file_task
from taskarith.groundwork.errors import TaskarithError
from taskarith.groundwork.lock import run_lock
from taskarith.run import vector_path

from cli_cases import Ctx, _write
from hostile_cases import (NEVER_RUN, TWO_ROWS, Case, _absent, _mkdir, _one_error, _task_file, _vectors,
                           check_hostile_input)

SECRET = b"precious contents\n"


# --- builders --------------------------------------------------------------------------------------------

def _outside(c: Ctx) -> Path:
    """A file outside every run folder that no command may change."""
    return _write(c.tmp / "outside.txt", SECRET)


def _planted_lock(plant: Callable[[Ctx, Path], None], command: str = "run") -> Callable[[Ctx], list[str]]:
    def setup(c: Ctx) -> list[str]:
        run = c.tmp / "run"
        run.mkdir()
        plant(c, run / ".lock")
        if command == "analyze":
            (run / "results.json").write_text('{"schema": 1}')
            return ["analyze", "kernel", str(run)]
        return ["run", str(c.config()), "--out", str(run)]
    return setup


def _outside_unchanged(c: Ctx) -> None:
    assert (c.tmp / "outside.txt").read_bytes() == SECRET


def _merge_into_link(c: Ctx) -> list[str]:
    link = c.tmp / "merged.safetensors"
    link.symlink_to(_outside(c))
    return ["vector", "merge", *_vectors(c.tmp), "--method", "task_arithmetic", "--out", str(link)]


def _write_through_planted_folder(c: Ctx) -> Callable[[], Any]:
    run, elsewhere = c.tmp / "run", c.tmp / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    (run / "vectors").symlink_to(elsewhere)

    def call() -> None:
        with run_lock(run):
            write_json(run / "vectors" / "x.json", {})
    return call


def _fifo(c: Ctx, name: str) -> Path:
    os.mkfifo(c.tmp / name)
    return c.tmp / name


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _nothing_escaped(c: Ctx) -> None:
    _absent(c.tmp.parent / "x", c.tmp / "runs")


def _failed_run(c: Ctx, **sections) -> list[str]:
    """A run into a folder that does not exist yet, failing after it took the folder's lock."""
    return ["run", str(c.config(**sections)), "--out", str(c.tmp / "new" / "deep" / "run")]


def _no_run_folder(c: Ctx) -> None:
    _absent(c.tmp / "new")


def _results_fifo(c: Ctx) -> list[str]:
    _mkdir(c.tmp / "r")
    return ["report", str(_fifo(c, "r/results.json").parent)]


# --- the table -------------------------------------------------------------------------------------------

LOCK_REFUSED = "refusing it as the run folder's lock"
CASES = [
    # class 1: the run lock and every write in a run folder follow no planted symlink
    Case("lock-symlink-to-outside-file", _planted_lock(lambda c, p: p.symlink_to(_outside(c))),
         ".lock: is a symlink; " + LOCK_REFUSED, _outside_unchanged),
    Case("lock-symlink-from-analyze", _planted_lock(lambda c, p: p.symlink_to(_outside(c)), "analyze"),
         ".lock: is a symlink; " + LOCK_REFUSED, _outside_unchanged),
    Case("lock-dangling-symlink", _planted_lock(lambda c, p: p.symlink_to(c.tmp / "made")), "is a symlink",
         lambda c: _absent(c.tmp / "made")),
    Case("lock-is-a-fifo", _planted_lock(lambda c, p: os.mkfifo(p)), LOCK_REFUSED),
    Case("lock-is-a-hard-link", _planted_lock(lambda c, p: os.link(_outside(c), p)), LOCK_REFUSED,
         _outside_unchanged),
    Case("lock-is-a-folder", _planted_lock(lambda c, p: p.mkdir()), "cannot create the run folder's lock"),
    Case("write-over-symlink", _merge_into_link, "merged.safetensors: is a symlink; refusing to write through it",
         _outside_unchanged),
    Case("write-through-planted-folder", _write_through_planted_folder, "vectors: is a symlink",
         lambda c: _absent(*(c.tmp / "elsewhere").iterdir())),
    # class 5: names that become path parts are plain
    Case("name-escapes-runs", lambda c: ["run", str(c.config(name="../../x"))],
         "name: Value error, must be a plain name", _nothing_escaped),
    *[Case(f"name-{i}", lambda c, n=n: ["run", str(c.config()), "--set", f"name={n}"], "must be a plain name",
           _nothing_escaped)
      for i, n in enumerate([".", "..", "a/b", "/abs", ".hidden", "-rf", "x" * 101, "'a b'", "'tab\tx'"])],
    Case("task-stem-with-space", lambda c: _task_file(c, "my data.csv"),
         "task name (the file's stem) 'my data' is not a plain name"),
    Case("task-stem-dot", lambda c: _task_file(c, "..csv"), "task name (the file's stem) '.' is not a plain name"),
    Case("task-stem-escape", lambda c: _task_file(c, "a\x1b[2Jb.csv"), "'a\\x1b[2Jb' is not a plain name"),
    Case("task-name-given", lambda c: lambda: load_file_task(_write(c.tmp / "ok.csv", TWO_ROWS), name="../x"),
         "task name '../x' is not a plain name"),
    # class 8: nothing but regular files is read
    Case("config-is-a-fifo", lambda c: ["run", str(_fifo(c, "c.yaml"))],
         "cannot read the config file (a named pipe, not a regular file)"),
    Case("config-is-a-device", lambda c: ["run", os.devnull, *NEVER_RUN],
         "cannot read the config file (a character device, not a regular file)"),
    Case("task-file-is-a-fifo", lambda c: c.finetune_args("--task", str(_fifo(c, "t.csv"))),
         "cannot read (a named pipe, not a regular file)"),
    Case("task-file-links-to-a-fifo", lambda c: c.finetune_args(
        "--task", str(_link(c.tmp / "l.csv", _fifo(c, "t.csv")))), "a named pipe, not a regular file"),
    Case("task-file-is-a-folder", lambda c: c.finetune_args("--task", str(_mkdir(c.tmp / "d.jsonl"))),
         "cannot read (Is a directory)"),
    Case("results-json-is-a-fifo", _results_fifo,
         "results.json: cannot read (a named pipe, not a regular file)"),
    Case("vector-file-is-a-fifo", lambda c: ["vector", "info", str(_fifo(c, "v.safetensors"))],
         "cannot read (a named pipe, not a regular file)"),
    # class 3: a failed run leaves no folder or lock behind (temp files: test_killed_writes.py)
    Case("failed-run-bad-control", lambda c: _failed_run(c, eval={"negation_control": "nope"}),
         "eval.negation_control = 'nope': not a task of this run", _no_run_folder),
    Case("failed-run-missing-task", lambda c: _failed_run(c, data={"tasks": [str(c.tmp / "gone.csv")]}),
         "gone.csv", _no_run_folder),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer):
    check_hostile_input(case, Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None))


def test_a_held_lock_keeps_its_pid(tmp_path, tiny_model_dir, csv_tasks, tokenizer, monkeypatch):
    """The refused process never truncates the lock: the holder's pid stays readable."""
    ctx = Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None)
    run = tmp_path / "run"
    with run_lock(run):
        result = CliRunner().invoke(app, ["run", str(ctx.config()), "--out", str(run)])
        assert result.exit_code == 2
        assert f"another taskarith process (pid {os.getpid()})" in _one_error(result.stderr)
        assert (run / ".lock").read_text() == str(os.getpid())


def test_a_held_lock_quotes_no_planted_text(tmp_path):
    """The holder's pid is read from a file anyone may have written: only digits reach the one-line error."""
    run = tmp_path / "run"
    with run_lock(run):
        (run / ".lock").write_bytes(b"\x1b[2J\nerror: fake")
        with pytest.raises(TaskarithError, match=r"another taskarith process \(pid unknown\)"):
            with run_lock(run):
                pass


def test_a_dead_holders_longer_pid_is_replaced_whole(tmp_path):
    run = _mkdir(tmp_path / "run")
    _write(run / ".lock", b"9" * 20)
    with run_lock(run):
        assert (run / ".lock").read_text() == str(os.getpid())


def test_a_lock_replaced_while_it_is_taken_is_refused(tmp_path, monkeypatch):
    """A .lock moved aside and made anew between the open and the flock: holding the old inode would let a
    second run in through the new one."""
    import fcntl

    run = _mkdir(tmp_path / "run")
    _write(run / ".lock", b"")
    flock = fcntl.flock

    def replace_then_flock(fd: int, operation: int) -> None:
        monkeypatch.setattr(fcntl, "flock", flock)
        os.rename(run / ".lock", tmp_path / "aside")
        _write(run / ".lock", b"")
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", replace_then_flock)
    with pytest.raises(TaskarithError, match="the run folder's lock changed while it was taken; try again"):
        with run_lock(run):
            pass
    assert (tmp_path / "aside").read_bytes() == (run / ".lock").read_bytes() == b""


def test_the_cache_lock_follows_no_planted_symlink(tmp_path):
    import errno

    from taskarith.groundwork.fetch import _locked

    for target in (_write(tmp_path / "outside.txt", SECRET), tmp_path / "made"):
        link = _link(tmp_path / f".{target.name}.lock", target)
        with pytest.raises(OSError) as refused:
            with _locked(link):
                pass
        assert refused.value.errno == errno.ELOOP
    assert (tmp_path / "outside.txt").read_bytes() == SECRET
    _absent(tmp_path / "made")


def test_a_symlinked_run_folder_of_the_user_is_still_written(tmp_path):
    """Only links planted inside the run folder are refused; the folder itself may be a link."""
    (tmp_path / "disk").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "disk")
    with run_lock(tmp_path / "runs" / "r"):
        write_json(tmp_path / "runs" / "r" / "results.json", {"ok": 1})
    assert json.loads((tmp_path / "disk" / "r" / "results.json").read_text()) == {"ok": 1}


def test_a_regex_preset_stays_one_folder():
    path = vector_path(0, "attention", "t", "regex:../../../x/y")
    assert path.parts[:2] == ("vectors", "seed0") and len(path.parts) == 5 and ".." not in path.parts
    assert path.parts[2].startswith("attention-regex-")
    assert vector_path(0, "attention", "t", "attention+mlp").parts[2] == "attention-attention+mlp"
