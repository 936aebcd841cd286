"""Hostile inputs: planted symlinks and special files, YAML bombs, path-escaping names, terminal escapes.

One table in the style of test_bad_inputs.py: each case builds its input in a fresh folder and returns CLI
arguments or a Python call; the error must be one printable line of bounded length with exit code 2, must come
within its CPU budget and a wall-clock deadline (a FIFO or a bomb would otherwise hang), and files present before
must be unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from typer.testing import CliRunner

from taskarith.atomic import write_json
from taskarith.cli import app
from taskarith.data import load_file_task
from taskarith.errors import TaskarithError
from taskarith.lock import run_lock
from taskarith.run import vector_path
from taskarith.vectors import TaskVector

from test_bad_inputs import Ctx, _write

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


def _vectors(folder: Path, task: str = "t") -> list[str]:
    meta = {"base_model": "m", "base_hash": "0" * 64, "paradigm": "attention", "preset": "attention"}
    paths = []
    for i in range(2):
        path = folder / f"v{i}.safetensors"
        TaskVector({"w": torch.full((4,), float(i + 1))}, {**meta, "task": f"{task}{i}"}).save(path)
        paths.append(str(path))
    return paths


def _merge_into_link(c: Ctx) -> list[str]:
    link = c.tmp / "merged.safetensors"
    link.symlink_to(_outside(c))
    return ["vector", "merge", *_vectors(c.tmp), "--rule", "task_arithmetic", "--out", str(link)]


def _write_through_planted_folder(c: Ctx) -> Callable[[], Any]:
    run, elsewhere = c.tmp / "run", c.tmp / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    (run / "vectors").symlink_to(elsewhere)

    def call() -> None:
        with run_lock(run):
            write_json(run / "vectors" / "x.json", {})
    return call


# were the file read as a valid config, this override would fail validation, not run the default model
NEVER_RUN = ["--set", "train.steps=0"]


def _yaml(c: Ctx, text: str) -> list[str]:
    return ["run", str(_write(c.tmp / "c.yaml", text.encode())), *NEVER_RUN]


def _alias_bomb(levels: int = 6) -> str:
    """Nested aliases under a typed key, whose error once quoted the expansion: six levels made a 34 MB line
    (deeper ones would take the machine's memory if the refusal ever broke)."""
    lines = ['  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  - &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "name:\n" + "\n".join(lines) + "\n"


TWO_ROWS = b"text,label\nwhat city,a\nfree win,b\n"


def _task_file(c: Ctx, name: str, content: bytes = TWO_ROWS) -> list[str]:
    return c.finetune_args("--task", str(_write(c.tmp / name, content)))


def _fifo(c: Ctx, name: str) -> Path:
    os.mkfifo(c.tmp / name)
    return c.tmp / name


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _absent(*paths: Path) -> None:
    assert not any(os.path.lexists(p) for p in paths), paths


def _nothing_escaped(c: Ctx) -> None:
    _absent(c.tmp.parent / "x", c.tmp / "runs")


def _vector_pair(c: Ctx, second: float) -> list[str]:
    """Two attention vectors w and second·w, merged by the plain sum."""
    meta = {"base_model": "m", "base_hash": "0" * 64, "paradigm": "attention", "preset": "attention"}
    paths = []
    for i, scale in enumerate((1.0, second)):
        path = c.tmp / f"p{i}.safetensors"
        TaskVector({"w": torch.arange(1.0, 5.0) * scale}, {**meta, "task": f"t{i}"}).save(path)
        paths.append(str(path))
    return ["vector", "merge", *paths, "--rule", "task_arithmetic", "--out", str(c.tmp / "m.safetensors")]


def _empty_vector(c: Ctx) -> list[str]:
    path = c.tmp / "empty.safetensors"
    TaskVector({}, {"base_model": "m", "base_hash": "0" * 64, "paradigm": "attention", "task": "t"}).save(path)
    return ["vector", "info", str(path)]


def _failed_run(c: Ctx, **sections) -> list[str]:
    """A run into a folder that does not exist yet, failing after it took the folder's lock."""
    return ["run", str(c.config(**sections)), "--out", str(c.tmp / "new" / "deep" / "run")]


def _no_run_folder(c: Ctx) -> None:
    _absent(c.tmp / "new")


def _results_fifo(c: Ctx) -> list[str]:
    _mkdir(c.tmp / "r")
    return ["report", str(_fifo(c, "r/results.json").parent)]


def _jsonl(*labels) -> bytes:
    return "".join(json.dumps({"text": f"text {i}", "label": y}) + "\n" for i, y in enumerate(labels)).encode()


# --- the table -------------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str] | Callable[[], Any]]
    fragment: str
    check: Callable[[Ctx], None] | None = None
    # CPU time allowed: unlike wall time it does not grow when other work shares the machine
    seconds: float = 10.0


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
    # class 2: configs cannot be bombed, and quoted input is short
    Case("yaml-alias-bomb", lambda c: _yaml(c, _alias_bomb()), "anchors and aliases are not allowed", seconds=1),
    Case("yaml-anchor", lambda c: _yaml(c, "name: &n x\n"), "line 1: anchors and aliases are not allowed"),
    Case("yaml-merge-key", lambda c: _yaml(c, "base: &b {steps: 2}\ntrain: {<<: *b}\n"), "anchors and aliases"),
    Case("override-alias", lambda c: ["run", str(c.config()), "--set", "train.steps=*a"],
         "value is not valid YAML (line 1: anchors and aliases are not allowed)"),
    Case("huge-value-quoted-short", lambda c: _yaml(c, f"model: {{max_length: {'x' * 1_000_000}}}\n"),
         "model.max_length: Input should be a valid integer"),
    Case("huge-key-quoted-short", lambda c: ["run", str(c.config()), "--set", f"train.{'k' * 100_000}=1"],
         "unknown key"),
    Case("huge-override-quoted-short", lambda c: ["run", str(c.config()), "--set", "x" * 100_000],
         "expected KEY.PATH=VALUE"),
    Case("huge-label-quoted-short", lambda c: _task_file(
        c, "t.jsonl", json.dumps({"text": "a", "label": list(range(100_000))}).encode()),
         "is empty or not a string or number"),
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
    # class 7: what reaches the terminal is escaped
    Case("error-path-with-controls", lambda c: ["run", str(c.tmp / "a\x1b[2J\nfake line.yaml")],
         "a\\x1b[2J fake line.yaml: no such config file"),
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
    # class 3: a failed run leaves no folder or lock behind (temp files: the tests below the table)
    Case("failed-run-bad-control", lambda c: _failed_run(c, eval={"negation_control": "nope"}),
         "eval.negation_control = 'nope': not a task of this run", _no_run_folder),
    Case("failed-run-missing-task", lambda c: _failed_run(c, data={"tasks": [str(c.tmp / "gone.csv")]}),
         "gone.csv", _no_run_folder),
    # class 4: mistakes in files, flags and configs are one line, never a traceback
    Case("csv-field-over-limit", lambda c: _task_file(c, "big.csv", b"text,label\n" + b"a" * 140_000 + b",x\nb,y\n"),
         "not valid CSV (field larger than field limit"),
    Case("jsonl-5000-digit-label", lambda c: _task_file(c, "d.jsonl", b'{"text": "a", "label": ' + b"9" * 5000 + b"}\n"),
         "line 1: not valid JSON (Exceeds the limit"),
    Case("results-5000-digit-number", lambda c: ["report", str(_write(_mkdir(c.tmp / "r") / "results.json",
                                                                    b'{"schema": ' + b"1" * 5000 + b"}").parent)],
         "results.json: invalid JSON (Exceeds the limit"),
    Case("seed-beyond-64-bits", lambda c: ["run", str(c.config(train={"seed": 2**70}))],
         "train.seed: Input should be less than"),
    Case("merge-seed-beyond-64-bits", lambda c: ["vector", "merge", *_vectors(c.tmp), "--rule", "dare", "--seed",
                                                 str(2**70), "--out", str(c.tmp / "m.safetensors")],
         "merge seed must lie in [0, 2**63)"),
    Case("seeds-flag-huge", lambda c: ["run", str(c.config()), "--seeds", str(10**30)], "--seeds must lie in [1, 1000]"),
    Case("max-length-beyond-positions", lambda c: ["run", str(c.config(model={"max_length": 10**6}))],
         "model.max_length = 1000000:"),
    Case("override-5000-digit-int", lambda c: ["run", str(c.config()), "--set", "train.steps=" + "9" * 5000],
         "value is not valid YAML"),
    Case("config-5000-digit-int", lambda c: _yaml(c, "train:\n  steps: " + "9" * 5000 + "\n"), "not valid YAML"),
    # class 6: nonsense is refused, not coerced
    Case("lr-true", lambda c: ["run", str(c.config(train={"lr": True}))], "train.lr: Input should be a valid number"),
    Case("steps-true", lambda c: ["run", str(c.config(train={"steps": True}))],
         "train.steps: Input should be a valid integer"),
    Case("steps-fraction", lambda c: ["run", str(c.config(train={"steps": 2.5}))],
         "train.steps: Input should be a valid integer"),
    Case("negation-one", lambda c: ["run", str(c.config(eval={"negation": 1}))],
         "eval.negation: Input should be a valid boolean"),
    Case("alphas-bool", lambda c: ["run", str(c.config(eval={"alphas": [True]}))], "Input should be a valid number"),
    Case("override-lr-string", lambda c: ["run", str(c.config()), "--set", "train.lr='1e-3'"],
         "train.lr: Input should be a valid number"),
    Case("duplicate-key", lambda c: _yaml(c, "name: a\nname: b\n"), "line 2: duplicate key 'name'"),
    Case("duplicate-nested-key", lambda c: _yaml(c, "train:\n  lr: 0.1\n  lr: 0.2\n"), "line 3: duplicate key 'lr'"),
    Case("duplicate-key-in-override", lambda c: ["run", str(c.config()), "--set", "train={lr: 1, lr: 2}"],
         "duplicate key 'lr'"),
    Case("labels-int-and-float", lambda c: _task_file(c, "n.jsonl", _jsonl(1, 1.0, 2)),
         "labels '1' and '1.0' spell the same number"),
    Case("labels-leading-zero", lambda c: _task_file(c, "z.csv", b"text,label\na,01\nb,1\nc,2\n"),
         "labels '01' and '1' spell the same number"),
    Case("vector-without-tensors", _empty_vector, "the task vector holds no tensors"),
    Case("merge-cancels-to-zero", lambda c: _vector_pair(c, -1.0), "is zero everywhere; nothing to apply",
         lambda c: _absent(c.tmp / "m.safetensors")),
]


def _snapshot(folder: Path) -> dict[str, str]:
    """Digests of the regular files below `folder`; special files are never opened."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if stat.S_ISREG(p.lstat().st_mode)}


DEADLINE = 60.0  # wall seconds: a command that blocks (on a FIFO) fails its case instead of hanging the session


def _raise_deadline(*_):
    raise TimeoutError("the command blocked")


def _one_error(stderr: str) -> str:
    lines = [line for line in re.split(r"[\r\n]", stderr) if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert lines[0].isprintable(), lines[0]  # no escape sequence reaches the terminal
    assert len(lines[0]) <= 520, f"{len(lines[0])} characters"
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer):
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    ctx = Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None)
    target = case.setup(ctx)
    before = _snapshot(tmp_path)

    old = signal.signal(signal.SIGALRM, _raise_deadline)
    signal.setitimer(signal.ITIMER_REAL, DEADLINE)
    started = time.process_time()
    try:
        if callable(target):
            with pytest.raises(TaskarithError) as info:
                target()
            message = "error: " + str(info.value)
            _one_error(message)
        else:
            result = CliRunner().invoke(app, target)
            assert result.exit_code == 2, (result.output, result.exception)
            message = _one_error(result.stderr)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.process_time() - started < case.seconds
    assert case.fragment in message, message

    after = _snapshot(tmp_path)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"changed or removed by a failed command: {changed}"
    if case.check is not None:
        case.check(ctx)


def test_a_held_lock_keeps_its_pid(tmp_path, tiny_model_dir, csv_tasks, tokenizer, monkeypatch):
    """The refused process never truncates the lock: the holder's pid stays readable."""
    ctx = Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None)
    run = tmp_path / "run"
    with run_lock(run):
        result = CliRunner().invoke(app, ["run", str(ctx.config()), "--out", str(run)])
        assert result.exit_code == 2
        assert f"another taskarith process (pid {os.getpid()})" in _one_error(result.stderr)
        assert (run / ".lock").read_text() == str(os.getpid())


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


def test_vector_info_escapes_file_strings(tmp_path):
    """Control characters in a vector's metadata are printed escaped: no colour, no cleared screen, no fake line."""
    path = tmp_path / "v.safetensors"
    evil = "t\x1b[2J\x1b[31m\nerror: fake\r\u202e"
    TaskVector({"w": torch.ones(3)}, {"task": evil, "paradigm": "attention", "base_model": "m\x07"}).save(path)
    result = CliRunner().invoke(app, ["vector", "info", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")[:-1]
    assert len(lines) == 10 and all(line.isprintable() for line in lines), lines
    assert "t\\x1b[2J\\x1b[31m\\nerror: fake\\r\\u202e" in result.stdout and "m\\x07" in result.stdout
    raw = CliRunner().invoke(app, ["vector", "info", "--json", str(path)])
    assert raw.stdout.isascii() and "\x1b" not in raw.stdout and json.loads(raw.stdout)["task"] == evil


def test_vector_merge_escapes_task_names(tmp_path):
    result = CliRunner().invoke(app, ["vector", "merge", *_vectors(tmp_path, task="\x1b]0;x\x07"), "--rule",
                                      "task_arithmetic", "--out", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 0, result.output
    assert all(line.isprintable() for line in result.stdout.split("\n")[:-1]), result.stdout
    assert "\\x1b]0;x\\x07" in result.stdout


# --- class 3: temp files of killed writes --------------------------------------------------------------------

_KILLED_WRITER = """
import os, sys, time, torch
from taskarith.atomic import save_safetensors
os.replace = lambda *a: time.sleep(600)  # the temp file is complete: hang before the rename, to be killed there
save_safetensors(sys.argv[1], {"w": torch.zeros(1_000_000)})
"""


def _kill_mid_write(target: Path) -> Path:
    """SIGKILL a process that is writing `target`; returns the temp file it leaves behind."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)])
    try:
        deadline = time.monotonic() + 60
        while not [p for p in target.parent.glob(f".{target.name}.*.tmp") if p.stat().st_size > 4_000_000]:
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never got to its rename"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    (left,) = target.parent.glob(f".{target.name}.*.tmp")
    assert f".{proc.pid}." in left.name  # named by its writer, so the next write knows it is stale
    return left


def test_a_killed_vector_write_is_cleaned_by_the_next_write(tmp_path):
    target = tmp_path / "v.safetensors"
    _kill_mid_write(target)
    TaskVector({"w": torch.ones(3)}, {"task": "t", "paradigm": "attention"}).save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.safetensors"]


def test_a_killed_write_in_a_run_folder_is_cleaned_by_the_next_run(tmp_path, tiny_model_dir, csv_tasks):
    from test_run import tiny_config
    from taskarith.run import run_experiment

    run = tmp_path / "run"
    _kill_mid_write(run / "vectors" / "seed0" / "attention" / Path(csv_tasks[0]).stem / "checkpoint.safetensors")
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"negation": False})
    run_experiment(cfg.model_copy(update={"paradigms": ["attention"]}), run, progress=False, log=lambda *_: None)
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def test_a_live_writers_temp_file_is_left_alone(tmp_path):
    import subprocess

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        live = _write(tmp_path / f".v.safetensors.{sleeper.pid}.abc123.tmp", b"partial")
        TaskVector({"w": torch.ones(3)}, {"task": "t", "paradigm": "attention"}).save(tmp_path / "v.safetensors")
        assert live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_failed_run_keeps_a_folder_that_was_there(tmp_path, tiny_model_dir, csv_tasks):
    run = _mkdir(tmp_path / "mine")
    _write(run / "notes.txt", b"keep")
    config = _write(tmp_path / "c.yaml", json.dumps({"model": {"name": str(tiny_model_dir), "max_length": 16},
                                                      "data": {"tasks": csv_tasks},
                                                      "eval": {"negation_control": "nope"}}).encode())
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(run)])
    assert result.exit_code == 2, result.output
    assert sorted(p.name for p in run.iterdir()) == [".lock", "notes.txt"]


def test_a_killed_figure_write_is_cleaned_by_the_next_report(tmp_path):
    """The published text8 folder, reported again after a report was killed while saving a figure."""
    import shutil
    import subprocess

    folder = tmp_path / "text8"
    shutil.copytree(Path(__file__).parents[1] / "docs" / "results" / "text8", folder)
    dead = subprocess.Popen(["true"])
    dead.wait()
    figure = next((folder / "figures").glob("*.png"))
    _write(figure.parent / f".{figure.name}.{dead.pid}.k1ll3d.tmp", b"")
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
