"""Every bad input gives one line naming what is at fault, exit code 2, no traceback, and nothing partial on disk.

The tables in test_bad_*.py: each case builds its bad input in a fresh folder and returns either CLI arguments
(run in-process against `taskarith.cli.app`) or a Python call; the expected fragment must appear in the one-line
message. After the error, files that existed before are byte-identical (the previous artifact is kept) and no
temp file or staging folder is left behind. This module holds what the tables share: the case context, the
builders more than one table uses, and the check every case runs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.groundwork.errors import TaskarithError
from taskarith.training.selection import select
from taskarith.vectors import TaskVector

from conftest import make_tiny_encoder


@dataclass
class Ctx:
    """What a case's setup may use: its folder, monkeypatch, and the tiny fixtures."""

    tmp: Path
    mp: pytest.MonkeyPatch
    model: Path
    tasks: list[str]
    tokenizer: Any
    finished_run: Path
    downloads: list | None = None

    def config(self, **sections) -> Path:
        """A valid tiny run config with `sections` merged in, written to tmp/config.yaml."""
        tree = {"name": "tiny", "model": {"name": str(self.model), "max_length": 16},
                "data": {"tasks": self.tasks},
                "train": {"steps": 2, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1, "checkpoint_every": 1},
                "eval": {"batch_size": 16, "alphas": [0.0, 0.5, 1.0]}, "paradigms": ["nonlinear"]}
        for key, value in sections.items():
            tree[key] = {**tree[key], **value} if isinstance(value, dict) and key in tree else value
        path = self.tmp / "config.yaml"
        path.write_text(yaml.safe_dump(tree))
        return path

    def finetune_args(self, *extra: str) -> list[str]:
        return ["finetune", "--task", self.tasks[0], "--set", f"model.name={self.model}", "--set",
                "model.max_length=16", "--set", "train.steps=2", "--set", "train.batch_size=8",
                "--out", str(self.tmp / "out"), *extra]


# --- builders --------------------------------------------------------------------------------------------

def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _vector(ctx: Ctx, dtype=torch.float32, paradigm: str = "attention") -> TaskVector:
    """A small valid τ on the tiny base (no training needed)."""
    family = make_tiny_encoder(ctx.tokenizer)
    names = select(family.net, "attention").names
    gen = torch.Generator().manual_seed(0)
    tensors = {n: 1e-3 * torch.randn(family.named_weights()[n].shape, generator=gen) for n in names}
    meta = {"base_model": family.model_id, "base_hash": family.fingerprint(names), "paradigm": paradigm,
            "preset": "attention", "task": "toy"}
    return TaskVector({n: t.to(dtype) for n, t in tensors.items()}, meta)


def _vector_file(ctx: Ctx, **kw) -> Path:
    path = ctx.tmp / "vector.safetensors"
    _vector(ctx, **kw).save(path)
    return path


def _no_vectors_written(ctx: Ctx) -> None:
    assert not list(ctx.tmp.rglob("*.safetensors*")), "nothing may be trained or saved"


# --- the check -------------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str] | Callable[[], Any]]  # CLI args, or a Python call expected to raise
    fragment: str
    check: Callable[[Ctx], None] | None = None  # more to check after the error


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


_LEFTOVER = re.compile(r"(^\..*\.tmp$)|(\.extract\.)")


def check_bad_input(case: Case, ctx: Ctx) -> None:
    """Run `case` in `ctx`: one error line with the fragment, earlier files unchanged, no partial file left."""
    tmp_path = ctx.tmp
    ctx.mp.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    ctx.mp.chdir(tmp_path)  # default output folders land here, never in the checkout
    target = case.setup(ctx)
    before = _snapshot(tmp_path)

    if callable(target):
        with pytest.raises(TaskarithError) as info:
            target()
        message = str(info.value)
        assert "\n" not in message, message
    else:
        result = CliRunner().invoke(app, target)
        assert result.exit_code == 2, (result.output, result.exception)
        assert "Traceback" not in result.output
        lines = [line for line in re.split(r"[\r\n]", result.stderr) if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
        message = errors[0]
    assert case.fragment in message, message

    after = _snapshot(tmp_path)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"changed or removed by a failed command: {changed}"
    leftovers = [str(p) for p in tmp_path.rglob("*") if _LEFTOVER.search(p.name)]
    assert not leftovers, f"partial files left: {leftovers}"
    if case.check is not None:
        case.check(ctx)
