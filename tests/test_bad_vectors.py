"""Bad task-vector files, damaged checkpoints and diverging training: one-line errors, nothing partial on disk."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.config import TrainConfig
from taskarith.groundwork.errors import TaskarithError
from taskarith.training.trainer import TrainingJob, finetune
from taskarith.paradigms import resolve_paradigm
from taskarith.groundwork.tensor_files import read_safetensors
from taskarith.vectors import TaskVector

from cli_cases import Case, Ctx, _no_vectors_written, _vector, _vector_file, _write, check_bad_input
from conftest import interrupted_after, make_tiny_encoder

# --- builders --------------------------------------------------------------------------------------------

def _raw_safetensors(ctx: Ctx, tensors: dict, meta: dict | None) -> Path:
    from safetensors.torch import save_file

    path = ctx.tmp / "vector.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def _with_meta(ctx: Ctx, **changes) -> Path:
    tv = _vector(ctx)
    meta = {"schema": 1, **tv.meta, **changes}
    return _raw_safetensors(ctx, tv.tensors, {"taskarith": json.dumps(meta)})


def _poisoned(ctx: Ctx, value: float) -> Path:
    tv = _vector(ctx)
    first = tv.names[0]
    tv.tensors[first][0, 0] = value
    return _raw_safetensors(ctx, tv.tensors, {"taskarith": json.dumps({"schema": 1, **tv.meta})})


def _truncated(ctx: Ctx) -> Path:
    path = _vector_file(ctx)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 5])
    return path


TOY_TEXTS = ["what city river name", "where is the river", "free prize win now", "call now win free"] * 4
TOY_LABELS = [0, 0, 1, 1] * 4


def _toy_finetune(ctx: Ctx, cfg: TrainConfig, dtype=torch.float32) -> Callable[[], Any]:
    model = make_tiny_encoder(ctx.tokenizer, dtype=dtype)
    head = model.zero_shot_head(("city", "spam"), ("{}.",))
    job = TrainingJob(resolve_paradigm("nonlinear"), cfg, ctx.tmp / "ft", task="toy", progress=False)
    return lambda: finetune(model, TOY_TEXTS, TOY_LABELS, head, job)


CKPT_CFG = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=1)


def _damaged_checkpoint(ctx: Ctx, damage: Callable[[dict, dict], None]) -> Callable[[], Any]:
    """Train 2 of 6 steps, damage the checkpoint (tensors, header) in place, and resume."""
    from safetensors.torch import save_file

    with interrupted_after(2):
        _toy_finetune(ctx, CKPT_CFG)()
    path = ctx.tmp / "ft" / "checkpoint.safetensors"
    tensors, header = read_safetensors(path)
    damage(tensors, header)
    save_file(tensors, str(path), metadata=header)
    return _toy_finetune(ctx, CKPT_CFG)


def _set_first(prefix: str, value: float) -> Callable[[dict, dict], None]:
    """Damage: write `value` into the first tensor whose name starts with `prefix`."""
    def damage(tensors: dict, header: dict) -> None:
        tensors[next(k for k in tensors if k.startswith(prefix))].view(-1)[0] = value
    return damage


def _nan_loss_kept_checkpoint(ctx: Ctx) -> None:
    """The last checkpoint is finite and sits at the step the message names, so a resume starts there."""
    tensors, header = read_safetensors(ctx.tmp / "ft" / "checkpoint.safetensors")
    assert json.loads(header["checkpoint"])["step"] == 1
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k != "rng/torch")


# --- the table -------------------------------------------------------------------------------------------

CASES = [
    # task-vector files
    Case("vector-missing-file", lambda c: ["vector", "info", str(c.tmp / "none.safetensors")], "no such file"),
    Case("vector-truncated", lambda c: ["vector", "info", str(_truncated(c))], "has a damaged entry in the header"),
    Case("vector-random-bytes", lambda c: ["vector", "info", str(_write(c.tmp / "v.safetensors",
                                                                         random.Random(0).randbytes(300)))],
         "not a safetensors file (no header)"),
    Case("vector-empty-file", lambda c: ["vector", "info", str(_write(c.tmp / "v.safetensors", b""))],
         "not a safetensors file (no header)"),
    Case("vector-without-metadata", lambda c: ["vector", "info", str(_raw_safetensors(c, {"a": torch.zeros(2)},
                                                                                        None))],
         "not a taskarith task vector"),
    Case("vector-metadata-not-json", lambda c: ["vector", "info", str(_raw_safetensors(
        c, {"a": torch.zeros(2)}, {"taskarith": "{schema: 1"}))], "task-vector metadata: not valid JSON"),
    Case("vector-old-schema", lambda c: ["vector", "info", str(_with_meta(c, schema=0))],
         "task-vector schema 0 is not supported (expected 1)"),
    Case("vector-nan", lambda c: ["vector", "info", str(_poisoned(c, float("nan")))], "holds NaN or Inf"),
    Case("vector-inf", lambda c: ["vector", "info", str(_poisoned(c, float("inf")))], "holds NaN or Inf"),
    Case("vector-integer-dtype", lambda c: ["vector", "info", str(_raw_safetensors(
        c, {"a": torch.zeros(2, dtype=torch.int64)}, {"taskarith": json.dumps({"schema": 1})}))],
         "'a' has dtype torch.int64"),
    Case("vectors-from-other-bases", lambda c: lambda: _vector(c) + TaskVector(
        _vector(c).tensors, {**_vector(c).meta, "base_hash": "0" * 64}), "come from different bases"),
    Case("vector-on-other-base", lambda c: lambda: _vector(c).check_base(make_tiny_encoder(c.tokenizer, seed=1)),
         "was made on tiny-bert-seed0"),
    Case("vectors-of-other-shapes", lambda c: lambda: _vector(c) + TaskVector(
        {n: t[:1] for n, t in _vector(c).tensors.items()}, _vector(c).meta), "shape (32, 32) in toy/attention"),
    Case("vectors-of-other-dtypes", lambda c: lambda: _vector(c) + _vector(c, dtype=torch.float16),
         "dtype torch.float32 in toy/attention vs torch.float16"),
    Case("vector-dtype-other-than-base", lambda c: lambda: TaskVector.load(
        _vector_file(c, dtype=torch.float16)).check_base(make_tiny_encoder(c.tokenizer)),
         "task vector dtype torch.float16 vs torch.float32 in tiny-bert-seed0"),
    Case("linear-plus-nonlinear", lambda c: lambda: _vector(c) + _vector(c, paradigm="linear"),
         "cannot combine linear and non-linear"),
    # checkpoints and training
    Case("checkpoint-nan-parameter", lambda c: _damaged_checkpoint(c, _set_first("param/", float("nan"))),
         "checkpoint tensor 'param/"),
    Case("checkpoint-inf-optimizer-state", lambda c: _damaged_checkpoint(c, _set_first("optim/", float("inf"))),
         "holds NaN or Inf"),
    Case("checkpoint-metadata-damaged", lambda c: _damaged_checkpoint(
        c, lambda t, h: h.update(checkpoint="[1, 2]")), "not a taskarith training checkpoint"),
    Case("checkpoint-without-rng-state", lambda c: _damaged_checkpoint(c, lambda t, h: t.pop("rng/torch")),
         "damaged optimizer, scheduler or RNG state"),
    Case("loss-becomes-nan", lambda c: _toy_finetune(c, TrainConfig(
        steps=4, batch_size=4, lr=1e30, warmup_steps=0, grad_clip=None, checkpoint_every=1)),
         "loss became nan at step 1; the last good checkpoint is kept", _nan_loss_kept_checkpoint),
    Case("float16-update-overflows", lambda c: _toy_finetune(c, TrainConfig(
        steps=4, batch_size=4, lr=1e5, warmup_steps=0, grad_clip=None, checkpoint_every=1), dtype=torch.float16),
         "became NaN or Inf at step 0; no checkpoint was kept", _no_vectors_written),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run):
    check_bad_input(case, Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run))


def test_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "none.safetensors")
    quiet = CliRunner().invoke(app, ["vector", "info", missing])
    assert quiet.exit_code == 2 and quiet.exception is not None and isinstance(quiet.exception, SystemExit)
    loud = CliRunner().invoke(app, ["--debug", "vector", "info", missing])
    assert isinstance(loud.exception, TaskarithError) and "no such file" in str(loud.exception)
