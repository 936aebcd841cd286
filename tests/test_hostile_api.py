"""Hostile calls to the Python API and hostile task-vector files: a wrong type is a TypeError naming the
function and parameter, a bad value or file one TaskarithError line; nothing is written either way."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import taskarith as ta
from taskarith.groundwork.errors import TaskarithError
from taskarith.vectors import TaskVector

from cli_cases import Ctx
from conftest import make_tiny_encoder
from hostile_cases import Case, _absent, _mkdir, _vectors, check_hostile_input

META = {"base_model": "m", "base_hash": "0" * 64, "paradigm": "attention", "preset": "attention"}


def _tv(scale: float = 1.0, **meta) -> TaskVector:
    return TaskVector({"w": torch.arange(1.0, 5.0) * scale}, {**META, "task": f"t{scale}", **meta})


# --- wrong types: TypeError naming the parameter ----------------------------------------------------------

WRONG_TYPES = [
    ("merge-str-for-list", lambda t: ta.merge("notalist", "ties"), "merge: vectors must be a list of task vectors"),
    ("merge-density-none", lambda t: ta.merge([_tv(), _tv(2)], "ties", density=None),
     "merge: density must be a number, not NoneType"),
    ("merge-weights-str", lambda t: ta.merge([_tv(), _tv(2)], weights="12"),
     "merge: weights must be a list of numbers, not str"),
    ("merge-unknown-setting", lambda t: ta.merge([_tv(), _tv(2)], rule="ties"),
     "merge() got an unexpected keyword argument 'rule'"),
    ("vector-plus-int", lambda t: _tv() + 3, "unsupported operand type(s) for +: 'TaskVector' and 'int'"),
    ("int-minus-vector", lambda t: 3 - _tv(), "unsupported operand type(s) for -: 'int' and 'TaskVector'"),
    ("vector-times-bool", lambda t: _tv() * True, "unsupported operand type(s) for *"),
    ("cosine-none", lambda t: _tv().cosine(None), "TaskVector.cosine: other must be a TaskVector, not NoneType"),
    ("dot-str", lambda t: _tv().dot("w"), "TaskVector.dot: other must be a TaskVector, not str"),
    ("norm-str-for-list", lambda t: _tv().norm("w"), "TaskVector.norm: names must be a list of str, not str"),
    ("check-base-str", lambda t: _tv().check_base("m"), "TaskVector.check_base: model must be a Model"),
    ("load-none", lambda t: TaskVector.load(None), "TaskVector.load: path must be a path"),
    ("save-int", lambda t: _tv().save(3), "TaskVector.save: path must be a path"),
    ("constructor-list", lambda t: TaskVector([torch.ones(2)], {}), "TaskVector: tensors must be a dict"),
    ("run-experiment-dict", lambda t: ta.run_experiment({"name": "x"}, t / "run"),
     "run_experiment: cfg must be an ExperimentConfig"),
    ("run-experiment-seeds-str", lambda t: ta.run_experiment(ta.load_config(None), t / "run", seeds="3"),
     "run_experiment: seeds must be a list of seed indices"),
    ("extract-preset-none", lambda t: ta.extract(str(t), str(t), preset=None),
     "extract: preset must be a str, not NoneType"),
    ("load-model-int", lambda t: ta.load_model(3), "load_model: name must be a path"),
    ("load-model-option-type", lambda t: ta.load_model(str(t), max_length="16"),
     "load_model: max_length: Input should be a valid integer"),
    ("load-config-str-for-list", lambda t: ta.load_config(None, "train.steps=1"),
     "load_config: overrides must be a list"),
    ("export-str-for-list", lambda t: ta.export(t, "v.safetensors", t / "out"),
     "export: vectors must be a list of paths, not str"),
    ("export-alpha-str", lambda t: ta.export(t, ["v.safetensors"], t / "out", alpha="1"),
     "export: alpha: Input should be a valid number"),
    ("finetune-model-none", lambda t: ta.finetune(None, "task.csv"), "finetune: model must be a Model"),
    ("score-model-none", lambda t: ta.score(None, "task.csv"), "score: model must be a Model"),
    ("applied-model-none", lambda t: ta.applied(None, []), "applied: model must be a Model"),
]


@pytest.mark.parametrize("call,fragment", [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES])
def test_wrong_type_is_a_type_error_naming_the_parameter(call, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError) as info:
        call(tmp_path)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_sum_of_vectors_still_starts_from_zero():
    a, b = _tv(), _tv(2.0)
    assert torch.equal(sum([a, b]).tensors["w"], (a + b).tensors["w"])


# --- bad values and files: one TaskarithError line ---------------------------------------------------------

def _merge(c: Ctx, *paths: str, weights: str | None = None) -> list[str]:
    extra = ["--weights", weights] if weights is not None else []
    return ["vector", "merge", *paths, "--method", "task_arithmetic", *extra, "--out", str(c.tmp / "m.safetensors")]


def _saved(c: Ctx, name: str, tv: TaskVector) -> str:
    tv.save(c.tmp / name)
    return str(c.tmp / name)


def _with_schema(c: Ctx, schema: object) -> list[str]:
    from safetensors.torch import save_file

    path = c.tmp / "s.safetensors"
    save_file({"w": torch.ones(2)}, str(path), metadata={"taskarith": json.dumps({**META, "schema": schema})})
    return ["vector", "info", str(path)]


def _linked(c: Ctx, link) -> list[str]:
    first = _vectors(c.tmp)[0]
    link(first, c.tmp / "twin.safetensors")
    return _merge(c, first, str(c.tmp / "twin.safetensors"))


def _other_spelling(c: Ctx) -> list[str]:
    first = _vectors(c.tmp)[0]
    _mkdir(c.tmp / "sub")
    return _merge(c, first, str(c.tmp / "sub" / ".." / Path(first).name))


def _full_and_attention(c: Ctx) -> list[str]:
    """A non-linear (full preset) and an attention-only vector: other parameters, so other θ0 hashes too."""
    full = _tv(base_hash="1" * 64, paradigm="nonlinear", preset="full")
    full.tensors["v"] = torch.ones(2)
    return _merge(c, _saved(c, "full.safetensors", full), _saved(c, "att.safetensors", _tv(2.0)))


def _finetune(c: Ctx, task: str, **train):
    model = make_tiny_encoder(c.tokenizer)
    return lambda: ta.finetune(model, task, "attention", out=c.tmp / "ft", progress=False, **train)


NOT_WRITTEN = lambda c: _absent(c.tmp / "m.safetensors")  # noqa: E731

CASES = [
    # merge weights and coefficients are finite, and so is what they make
    Case("merge-weights-inf", lambda c: _merge(c, *_vectors(c.tmp), weights="inf,1"),
         "--weights must be finite numbers; got 'inf,1'", NOT_WRITTEN),
    Case("merge-weights-nan", lambda c: _merge(c, *_vectors(c.tmp), weights="1,nan"),
         "--weights must be finite numbers; got '1,nan'", NOT_WRITTEN),
    Case("merge-weights-overflow", lambda c: _merge(c, *_vectors(c.tmp), weights="1e300,1"),
         "tensor 'w' holds NaN or Inf (weights [1e+300, 1.0] overflow", NOT_WRITTEN),
    Case("api-merge-weights-inf", lambda c: lambda: ta.merge([_tv(), _tv(2.0)], weights=[float("inf"), 1.0]),
         "merge weights must be finite numbers, got [inf, 1.0]"),
    Case("coefficient-inf", lambda c: lambda: _tv() * float("inf"),
         "TaskVector.__mul__: coefficient must be a finite number, got inf"),
    Case("coefficient-beyond-float", lambda c: lambda: 10**400 * _tv(), "coefficient must be a finite number"),
    Case("coefficient-overflow", lambda c: lambda: _tv() * 1e300, "tensor 'w' holds NaN or Inf"),
    Case("norm-unknown-parameter", lambda c: lambda: _tv().norm(["nope"]), "has no parameter 'nope'"),
    # task-vector files
    Case("vector-all-zero", lambda c: _merge(c, _vectors(c.tmp)[0], _saved(c, "z.safetensors", _tv(0.0))),
         "z.safetensors: the task vector is zero everywhere", NOT_WRITTEN),
    Case("vector-schema-true", lambda c: _with_schema(c, True), "task-vector schema True is not supported"),
    Case("vector-schema-float", lambda c: _with_schema(c, 1.0), "task-vector schema 1.0 is not supported"),
    # one file given twice, however it is spelled
    Case("merge-same-path", lambda c: _merge(c, *[_vectors(c.tmp)[0]] * 2), "are the same file", NOT_WRITTEN),
    Case("merge-same-file-other-spelling", _other_spelling, f"sub{os.sep}..{os.sep}v0.safetensors are the same file",
         NOT_WRITTEN),
    Case("merge-symlink-to-same-file", lambda c: _linked(c, os.symlink), "twin.safetensors are the same file",
         NOT_WRITTEN),
    Case("merge-hardlink-to-same-file", lambda c: _linked(c, os.link), "twin.safetensors are the same file",
         NOT_WRITTEN),
    Case("api-merge-same-file", lambda c: lambda: ta.merge([_vectors(c.tmp)[0], Path(c.tmp / "v0.safetensors")]),
         "v0.safetensors are the same file"),
    # the real cause first: other parameters, not "different bases"
    Case("merge-nonlinear-and-attention", _full_and_attention,
         "task vectors t1.0/nonlinear and t2.0/attention cover different parameters (preset 'full' vs 'attention')",
         NOT_WRITTEN),
    # finetune's and score's values, refused before the output folder is made
    Case("finetune-missing-task-file", lambda c: _finetune(c, str(c.tmp / "missing.csv"), steps=1),
         "missing.csv: no such file", lambda c: _absent(c.tmp / "ft")),
    Case("finetune-lr-inf", lambda c: _finetune(c, c.tasks[0], lr=float("inf")), "finetune: lr:",
         lambda c: _absent(c.tmp / "ft")),
    Case("score-vector-of-another-model", lambda c: lambda: ta.score(make_tiny_encoder(c.tokenizer), c.tasks[0],
                                                                     [_tv()]), "has parameter 'w', which"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_api_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer):
    check_hostile_input(case, Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None))


def test_vectors_of_other_parameters_name_the_preset_not_the_base():
    full = TaskVector({"w": torch.ones(4), "v": torch.ones(2)},
                      {**META, "base_hash": "1" * 64, "paradigm": "nonlinear", "preset": "full", "task": "n"})
    with pytest.raises(TaskarithError, match="cover different parameters") as info:
        full + _tv()
    assert "different bases" not in str(info.value)
