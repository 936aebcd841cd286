"""Runs are reproducible: the same config and seed give the same numbers, and a run killed at any moment
and started again ends with the same task vectors as one never interrupted."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from conftest import tiny_config

from taskarith.run import run_experiment

SMALL = {"caps": {"train": 32, "val": 8, "test": 12}}


def accuracy_numbers(results_path: Path) -> dict:
    """Every accuracy of a results.json; timings, dates and paths left out."""
    results = json.loads(results_path.read_text())
    return {
        "pretrained": results["pretrained"],
        **{p: {seed: {k: v for k, v in r.items() if k in ("individual", "addition", "negation")}
               for seed, r in entry["seeds"].items()}
           for p, entry in results["paradigms"].items()},
    }


def assert_same_vectors(run: Path, reference: Path) -> None:
    """Every task vector of `run` holds exactly the tensors of the one at the same place in `reference`."""
    paths = sorted(p.relative_to(reference) for p in reference.rglob("vector.safetensors"))
    assert paths and sorted(p.relative_to(run) for p in run.rglob("vector.safetensors")) == paths
    for rel in paths:
        got, want = load_file(run / rel), load_file(reference / rel)
        assert got.keys() == want.keys(), rel
        for name, tensor in want.items():
            assert torch.equal(got[name], tensor), f"{rel}: {name}"


def test_same_config_and_seed_give_identical_results(tiny_model_dir, csv_tasks, tmp_path):
    cfg = tiny_config(tiny_model_dir, csv_tasks, data=SMALL, eval={"alphas": [0.0, 0.5, 1.0]},
                      analysis={"similarity": False, "efficiency": False})
    first = run_experiment(cfg, tmp_path / "a", progress=False, log=lambda *_: None)
    second = run_experiment(cfg, tmp_path / "b", progress=False, log=lambda *_: None)
    numbers = accuracy_numbers(first)
    assert set(numbers) == {"pretrained", "nonlinear", "linear", "attention"}
    assert all(set(numbers[p]["0"]) == {"individual", "addition", "negation"}
               for p in ("nonlinear", "linear", "attention"))
    assert accuracy_numbers(second) == numbers
    assert_same_vectors(tmp_path / "b", tmp_path / "a")


KILLS = 5


def _cli_run(config: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "taskarith", "run", str(config), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # stderr to a file: a pipe nobody reads while the run goes would fill up and stall it
    with open(out.parent / f"{out.name}.stderr", "w") as err:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)


def _finish(proc: subprocess.Popen, out: Path) -> None:
    assert proc.wait(timeout=300) == 0, (out.parent / f"{out.name}.stderr").read_text()


def test_a_run_killed_at_random_moments_resumes_to_identical_vectors(tiny_model_dir, csv_tasks, tmp_path):
    config = tmp_path / "kill.yaml"
    # a checkpoint after every step, so kills land between, during and after checkpoint writes
    cfg = tiny_config(tiny_model_dir, csv_tasks, data=SMALL, train={"steps": 12, "checkpoint_every": 1},
                      eval={"alphas": [0.0, 0.5, 1.0], "negation": False},
                      analysis={"similarity": False, "efficiency": False})
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    started = time.perf_counter()
    proc = _cli_run(config, reference)
    first_write = None
    while proc.poll() is None:
        if first_write is None and (reference / "vectors").exists():
            first_write = time.perf_counter() - started
        time.sleep(0.01)
    duration = time.perf_counter() - started
    _finish(proc, reference)
    assert first_write is not None

    # One kill point at random in each of KILLS equal slices of the reference run's timeline from its first
    # write on (a kill during imports and model loading leaves nothing to recover from); each restart pays
    # the start-up again, then runs on to the next point.
    rng = random.Random(0)
    span = (duration - first_write) / KILLS
    points = [first_write + (i + rng.random()) * span for i in range(KILLS)]
    landed = mid_training = 0
    for previous, point in zip([first_write, *points], points):
        proc = _cli_run(config, killed)
        time.sleep(first_write + point - previous)
        landed += proc.poll() is None
        proc.kill()
        proc.wait()
        # a checkpoint is left only by a kill between a vector's first step and its end
        mid_training += any(killed.rglob("checkpoint.safetensors"))
    _finish(_cli_run(config, killed), killed)
    print(f"{landed} of {KILLS} kills landed while the run was going; {mid_training} left a checkpoint to resume")

    assert landed >= 2
    assert_same_vectors(killed, reference)
    assert accuracy_numbers(killed / "results.json") == accuracy_numbers(reference / "results.json")
    assert not list(killed.rglob("checkpoint.safetensors")) and not list(killed.rglob(".*.tmp"))
