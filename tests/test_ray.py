"""`--executor ray` on a local Ray cluster gives what the local executor gives: the same vectors bit for bit
and the same accuracies, also when a worker is killed in the middle of a fine-tune."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from taskarith.vectors import TaskVector

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}})
    yield
    ray.shutdown()


def _config(model_dir, tasks, **overrides):
    return tiny_config(model_dir, tasks, eval={"alphas": [0.0, 0.5, 1.0]}, **overrides)


def _run(cfg, folder: Path, executor: str) -> dict:
    from taskarith.run import run_experiment
    from taskarith.run.ray_executor import run_on_ray

    run = run_on_ray if executor == "ray" else run_experiment
    return json.loads(run(cfg, folder, progress=False, log=lambda *_: None).read_text())


def _vectors(folder: Path) -> dict[str, TaskVector]:
    return {str(p.relative_to(folder)): TaskVector.load(p) for p in sorted(folder.glob("vectors/**/vector.safetensors"))}


def _same_vectors(a: Path, b: Path) -> None:
    va, vb = _vectors(a), _vectors(b)
    assert va and va.keys() == vb.keys()
    for name in va:
        assert va[name].tensors.keys() == vb[name].tensors.keys()
        assert all(torch.equal(va[name].tensors[n], vb[name].tensors[n]) for n in va[name].tensors), name


def _accuracies(results: dict) -> dict:
    """Everything measured of accuracy: each paradigm's seeds less their timings, and pretrained θ0."""
    return {"pretrained": results["pretrained"],
            "paradigms": {p: {s: {k: v for k, v in run.items() if k != "training"} for s, run in e["seeds"].items()}
                          for p, e in results["paradigms"].items()},
            "kernel": results["analysis"].get("kernel"), "disentangle": results["analysis"].get("disentangle"),
            "similarity": results["analysis"].get("similarity"), "lr_search": results.get("lr_search"),
            "ablation": {p: {s: {k: v for k, v in run.items() if k != "training"} for s, run in e["seeds"].items()}
                         for p, e in results["analysis"].get("ablation", {}).items()}}


def test_ray_runs_the_tiny_run_as_the_local_executor_does(cluster, tiny_model_dir, csv_tasks, tmp_path):
    cfg = _config(tiny_model_dir, csv_tasks, analysis={"kernel": True, "similarity": True,
                                                       "disentangle_pairs": [["places", "reviews"]],
                                                       "disentangle_grid": 3, "disentangle_points": 8,
                                                       "ablation": ["attention+mlp"]})
    cfg = cfg.model_copy(update={"lr_search": [1e-3, 3e-3]})
    local, remote = _run(cfg, tmp_path / "local", "local"), _run(cfg, tmp_path / "ray", "ray")
    _same_vectors(tmp_path / "local", tmp_path / "ray")
    assert _accuracies(local) == _accuracies(remote)
    assert remote["analysis"]["kernel"] and remote["analysis"]["disentangle"] and remote["analysis"]["ablation"]
    assert set(remote["lr_search"]) == set(cfg.paradigms)
    # every evaluation unit left its artifact where the sequential run looks for it
    for paradigm in cfg.paradigms:
        assert {p.name for p in (tmp_path / "ray" / "stages" / "seed0" / paradigm).iterdir()} == \
            {"evaluate.json", "negate.json"}


def _kill_first_finetune_worker(run_dir: Path, done: threading.Event) -> list[int]:
    """SIGKILL the Ray workers running fine-tunes once one of them has saved a checkpoint: the two units run at
    once, and the one with the checkpoint is among those killed."""
    while not done.is_set():
        if any(run_dir.glob("vectors/**/checkpoint.safetensors")):
            killed = [proc.info["pid"] for proc in psutil.process_iter(["pid", "cmdline"])
                      if any("ray::finetune" in part for part in proc.info["cmdline"] or ())]
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            return killed
        time.sleep(0.01)
    return []


def test_a_unit_whose_worker_is_killed_is_retried_and_the_run_finishes_identical(cluster, tiny_model_dir,
                                                                                  csv_tasks, tmp_path):
    steps = 120
    cfg = _config(tiny_model_dir, csv_tasks, train={"steps": steps, "checkpoint_every": 5})
    cfg = cfg.model_copy(update={"paradigms": ["nonlinear"]})
    local = _run(cfg, tmp_path / "local", "local")
    done, killed = threading.Event(), []
    killer = threading.Thread(target=lambda: killed.extend(_kill_first_finetune_worker(tmp_path / "ray", done)))
    killer.start()
    try:
        remote = _run(cfg, tmp_path / "ray", "ray")
    finally:
        done.set()
        killer.join()
    assert killed, "no fine-tune worker was found to kill"
    sessions = [tv.meta["training"]["steps_this_session"] for tv in _vectors(tmp_path / "ray").values()]
    assert any(0 < s < steps for s in sessions), sessions  # the retried unit resumed from its checkpoint
    _same_vectors(tmp_path / "local", tmp_path / "ray")
    assert _accuracies(local) == _accuracies(remote)


def test_without_ray_the_executor_says_what_to_install(monkeypatch):
    import builtins

    from taskarith.groundwork.errors import TaskarithError
    from taskarith.run.ray_executor import import_ray

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(TaskarithError, match=r"pip install 'taskarith\[ray\]'"):
        import_ray()
