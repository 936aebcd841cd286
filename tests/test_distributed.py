"""Data-parallel fine-tuning: 2 gloo ranks started by torchrun train the vector one process trains.

Tolerance: relative Frobenius error 1e-5 between the two vectors. The ranks compute exactly the same
arithmetic except the order of one float32 sum: each rank averages the gradient of its share of the batch
and DDP averages the ranks, where one process averages the whole batch at once. That reorders float32
additions (relative error ~1e-7 per step), which Adam carries through every later step; measured here at
about 1e-6 after 30 steps. A wrong split (a dropped or doubled example, a mean where a sum belongs) moves
the vector by percents.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from taskarith.training.distributed import Ranks, loss_scale, micro_batches, share
from taskarith.vectors import TaskVector

RTOL = 1e-5


def relative_error(a: TaskVector, b: TaskVector) -> float:
    assert a.tensors.keys() == b.tensors.keys()
    diff = sum(float((a.tensors[n].double() - b.tensors[n].double()).pow(2).sum()) for n in a.tensors)
    norm = sum(float(a.tensors[n].double().pow(2).sum()) for n in a.tensors)
    return (diff / norm) ** 0.5


def test_every_rank_takes_a_contiguous_share_and_together_they_take_the_batch_once():
    batch = list(range(100, 109))
    for world in (1, 2, 3, 4, 9):
        shares = [share(batch, Ranks(r, world)) for r in range(world)]
        assert sum(shares, []) == batch
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
        # the scales of every forward sum to the world size: DDP's mean over ranks is then the batch mean
        assert sum(loss_scale(len(p), Ranks(r, world), len(batch)) for r, s in enumerate(shares)
                   for p in micro_batches(s, 2)) == pytest.approx(world)
    assert micro_batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert micro_batches([1, 2, 3], None) == [[1, 2, 3]]
    assert loss_scale(8, Ranks(), 8) == 1.0  # one whole forward: the single-process graph, bit for bit


def test_accumulated_micro_batches_train_the_whole_batch_vector(encoder, toy_task, tmp_path):
    from taskarith.config import TrainConfig
    from taskarith.models.heads import zero_shot_head
    from taskarith.paradigms import resolve_paradigm
    from taskarith.training.trainer import TrainingJob, finetune

    texts, labels, classes, templates = toy_task
    head = zero_shot_head(encoder, classes, templates)
    train = TrainConfig(steps=8, batch_size=7, lr=1e-3, warmup_steps=1)
    vectors = [finetune(encoder, texts, labels, head, TrainingJob(resolve_paradigm("linear"), train, tmp_path / str(cap),
                                                                  "toy", progress=False, device_batch_size=cap))
               for cap in (None, 3)]
    assert 0 < relative_error(*vectors) < RTOL


def _finetune(tmp_path: Path, model_dir, task: str, out: str, paradigm: str, ranks: int, *extra: str,
              steps: int = 30, wait: bool = True):
    config = tmp_path / "train.yaml"
    config.write_text(f"model: {{name: {model_dir}, max_length: 16, device: cpu}}\n"
                      f"train: {{steps: {steps}, batch_size: 9, lr: 1.0e-3, warmup_steps: 2, checkpoint_every: 5}}\n")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"] \
        if ranks > 1 else [sys.executable]
    command = [*launch, "-m", "taskarith", "finetune", "--task", task, "--config", str(config), "--paradigm",
               paradigm, "--out", str(tmp_path / out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return TaskVector.load(tmp_path / out / "vector.safetensors")


@pytest.mark.parametrize("paradigm, extra", [("nonlinear", ()), ("attention", ()),
                                             ("linear", ("--set", "resources.device_batch_size=2"))])
def test_two_gloo_ranks_train_the_vector_one_process_trains(tiny_model_dir, csv_tasks, tmp_path, paradigm, extra):
    one = _finetune(tmp_path, tiny_model_dir, csv_tasks[0], "one", paradigm, 1)
    two = _finetune(tmp_path, tiny_model_dir, csv_tasks[0], "two", paradigm, 2, *extra)
    assert relative_error(one, two) < RTOL  # a batch of 9 splits 5 + 4: uneven shares are weighted right
    assert one.meta["base_hash"] == two.meta["base_hash"] and two.meta["paradigm"] == paradigm
    assert not (tmp_path / "two" / "checkpoint.safetensors").exists()


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the process torchrun started as LOCAL_RANK=rank, found through /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if f"LOCAL_RANK={rank}".encode() in env:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the rank through /proc")
def test_a_run_whose_rank_1_is_killed_finishes_on_one_process(tiny_model_dir, csv_tasks, tmp_path):
    steps = 150
    launched = _finetune(tmp_path, tiny_model_dir, csv_tasks[0], "out", "nonlinear", 2, steps=steps, wait=False)
    checkpoint = tmp_path / "out" / "checkpoint.safetensors"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and launched.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.exists(), launched.stderr.read() if launched.poll() is not None else "no checkpoint in 120 s"
    victim = _rank_pid(launched.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    assert launched.wait(timeout=120) != 0  # torchrun stops the group when a rank dies
    assert not (tmp_path / "out" / "vector.safetensors").exists()
    resumed = _finetune(tmp_path, tiny_model_dir, csv_tasks[0], "out", "nonlinear", 1, steps=steps)
    assert 0 < resumed.meta["training"]["steps_this_session"] < steps  # it went on from rank 0's checkpoint
    assert all(torch.isfinite(t).all() for t in resumed.tensors.values())
    whole = _finetune(tmp_path, tiny_model_dir, csv_tasks[0], "whole", "nonlinear", 1, steps=steps)
    assert relative_error(whole, resumed) < RTOL


def test_torchrun_runs_a_whole_run_with_every_fine_tune_on_two_ranks(tiny_model_dir, csv_tasks, tmp_path):
    import json

    import yaml

    from conftest import tiny_config
    from taskarith.run import run_experiment

    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"alphas": [0.0, 0.5, 1.0]}, train={"steps": 8})
    cfg = cfg.model_copy(update={"paradigms": ["nonlinear", "linear"], "lr_search": [1e-3, 3e-3]})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    run_experiment(cfg, tmp_path / "local", progress=False, log=lambda *_: None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "taskarith",
               "run", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "ranks")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("results: ") == 1  # rank 0 alone evaluates and reports
    results = json.loads((tmp_path / "ranks" / "results.json").read_text())
    assert set(results["paradigms"]) == {"nonlinear", "linear"} and (tmp_path / "ranks" / "report.md").exists()
    assert set(results["lr_search"]) == {"nonlinear", "linear"}  # rank 0 chose, every rank trained the candidates
    files = sorted((tmp_path / "local").glob("vectors/**/vector.safetensors"))
    assert len(files) == 8
    for path in files:
        ranked = TaskVector.load(tmp_path / "ranks" / path.relative_to(tmp_path / "local"))
        assert relative_error(TaskVector.load(path), ranked) < RTOL
