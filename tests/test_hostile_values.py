"""Hostile values: YAML bombs, huge numbers and quoted input, nonsense types, terminal escapes in output."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.vectors import TaskVector

from cli_cases import Ctx, _write
from hostile_cases import Case, _absent, _mkdir, _task_file, _vectors, _yaml, check_hostile_input

# --- builders --------------------------------------------------------------------------------------------

def _alias_bomb(levels: int = 6) -> str:
    """Nested aliases under a typed key, whose error once quoted the expansion: six levels made a 34 MB line
    (deeper ones would take the machine's memory if the refusal ever broke)."""
    lines = ['  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  - &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "name:\n" + "\n".join(lines) + "\n"


def _vector_pair(c: Ctx, second: float) -> list[str]:
    """Two attention vectors w and second·w, merged by the plain sum."""
    meta = {"base_model": "m", "base_hash": "0" * 64, "paradigm": "attention", "preset": "attention"}
    paths = []
    for i, scale in enumerate((1.0, second)):
        path = c.tmp / f"p{i}.safetensors"
        TaskVector({"w": torch.arange(1.0, 5.0) * scale}, {**meta, "task": f"t{i}"}).save(path)
        paths.append(str(path))
    return ["vector", "merge", *paths, "--method", "task_arithmetic", "--out", str(c.tmp / "m.safetensors")]


def _empty_vector(c: Ctx) -> list[str]:
    path = c.tmp / "empty.safetensors"
    TaskVector({}, {"base_model": "m", "base_hash": "0" * 64, "paradigm": "attention", "task": "t"}).save(path)
    return ["vector", "info", str(path)]


def _jsonl(*labels) -> bytes:
    return "".join(json.dumps({"text": f"text {i}", "label": y}) + "\n" for i, y in enumerate(labels)).encode()


# --- the table -------------------------------------------------------------------------------------------

CASES = [
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
    # class 7: what reaches the terminal is escaped
    Case("error-path-with-controls", lambda c: ["run", str(c.tmp / "a\x1b[2J\nfake line.yaml")],
         "a\\x1b[2J fake line.yaml: no such config file"),
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
    Case("merge-seed-beyond-64-bits", lambda c: ["vector", "merge", *_vectors(c.tmp), "--method", "dare", "--seed",
                                                 str(2**70), "--out", str(c.tmp / "m.safetensors")],
         "vector merge: seed must lie in [0, 2**63)"),
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


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer):
    check_hostile_input(case, Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None))


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
    result = CliRunner().invoke(app, ["vector", "merge", *_vectors(tmp_path, task="\x1b]0;x\x07"), "--method",
                                      "task_arithmetic", "--out", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 0, result.output
    assert all(line.isprintable() for line in result.stdout.split("\n")[:-1]), result.stdout
    assert "\\x1b]0;x\\x07" in result.stdout
