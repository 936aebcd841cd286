"""Temp files of killed writes are cleaned by the next write; a live writer's temp file and a user's folder are kept."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.vectors import TaskVector

from cli_cases import _write
from hostile_cases import _mkdir

# --- class 3: temp files of killed writes --------------------------------------------------------------------

_KILLED_WRITER = """
import os, sys, time, torch
from taskarith.groundwork.atomic import save_safetensors
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
    from conftest import tiny_config
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
