"""Hostile task files, cached zero-shot heads and fine-tune outputs: labels that are no class, NUL bytes, texts
all empty, a quote never closed, heads of another shape, dtype or class list, two fine-tunes into one folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import taskarith.models.heads as heads
from taskarith.cli.app import app
from taskarith.groundwork.errors import TaskarithError
from taskarith.groundwork.lock import held_run_folder, run_lock
from taskarith.groundwork.tensor_files import read_safetensors

from cli_cases import Ctx
from conftest import make_tiny_encoder
from hostile_cases import Case, _absent, _task_file, check_hostile_input

CLASSES, TEMPLATES = ("city", "spam"), ("{}.",)


# --- builders --------------------------------------------------------------------------------------------

def _jsonl_labels(*labels: str) -> bytes:
    """JSON lines whose label values are written raw (NaN, true, null are JSON the parser takes)."""
    return "".join(f'{{"text": "text {i}", "label": {y}}}\n' for i, y in enumerate(labels)).encode()


def _csv_labels(*labels: str) -> bytes:
    return ("text,label\n" + "".join(f"text {i},{y}\n" for i, y in enumerate(labels))).encode()


# --- the table: bad task files ---------------------------------------------------------------------------

LABEL_REFUSED = "spells a missing value or a non-finite number"
CASES = [
    Case("jsonl-label-nan", lambda c: _task_file(c, "t.jsonl", _jsonl_labels('"a"', '"b"', "NaN")),
         "t.jsonl line 3: label nan is NaN or infinite"),
    Case("jsonl-label-infinity", lambda c: _task_file(c, "t.jsonl", _jsonl_labels('"a"', "-Infinity", '"b"')),
         "t.jsonl line 2: label -inf is NaN or infinite"),
    Case("jsonl-label-overflows-to-inf", lambda c: _task_file(c, "t.jsonl", _jsonl_labels("1", "1e400", "2")),
         "t.jsonl line 2: label inf is NaN or infinite"),
    Case("jsonl-label-null", lambda c: _task_file(c, "t.jsonl", _jsonl_labels('"a"', '"b"', "null")),
         "t.jsonl line 3: label None is empty or not a string or number"),
    Case("jsonl-label-true", lambda c: _task_file(c, "t.jsonl", _jsonl_labels("true", "false")),
         "t.jsonl line 1: label True is a boolean"),
    Case("jsonl-label-string-nan", lambda c: _task_file(c, "t.jsonl", _jsonl_labels('"a"', '"NaN"')),
         f"t.jsonl line 2: label 'NaN' {LABEL_REFUSED}"),
    Case("jsonl-label-empty", lambda c: _task_file(c, "t.jsonl", _jsonl_labels('"a"', '"  "')),
         "t.jsonl line 2: label '  ' is empty"),
    Case("jsonl-label-1-and-1.0", lambda c: _task_file(c, "t.jsonl", _jsonl_labels("1", "1.0", "2")),
         "labels '1' and '1.0' spell the same number"),
    Case("csv-label-nan", lambda c: _task_file(c, "t.csv", _csv_labels("a", "b", "NaN")),
         f"t.csv line 4: label 'NaN' {LABEL_REFUSED}"),
    Case("csv-label-inf", lambda c: _task_file(c, "t.csv", _csv_labels("a", "-inf", "b")),
         f"t.csv line 3: label '-inf' {LABEL_REFUSED}"),
    Case("csv-label-null", lambda c: _task_file(c, "t.csv", _csv_labels("a", "b", "NULL")),
         f"t.csv line 4: label 'NULL' {LABEL_REFUSED}"),
    Case("csv-label-empty", lambda c: _task_file(c, "t.csv", _csv_labels("a", "b", "")),
         "t.csv line 4: label '' is empty"),
    Case("csv-label-1-and-1.0", lambda c: _task_file(c, "t.csv", _csv_labels("1", "1.0", "2")),
         "labels '1' and '1.0' spell the same number"),
    Case("csv-nul-byte", lambda c: _task_file(c, "t.csv", b"text,label\nwhat city,a\nfree\0win,b\n"),
         "t.csv line 3: holds a NUL byte"),
    Case("jsonl-nul-byte", lambda c: _task_file(c, "t.jsonl", b'{"text": "a", "label": "x"}\n\0\n'),
         "t.jsonl line 2: holds a NUL byte"),
    Case("csv-all-texts-empty", lambda c: _task_file(c, "t.csv", b'text,label\n,a\n   ,b\n"",a\n'),
         "t.csv: every text in column 'text' is empty or only whitespace"),
    Case("jsonl-all-texts-empty", lambda c: _task_file(c, "t.jsonl", b'{"text": "", "label": "a"}\n'
                                                                 b'{"text": null, "label": "b"}\n'),
         "t.jsonl: every text in column 'text' is empty or only whitespace"),
    Case("csv-header-only", lambda c: _task_file(c, "t.csv", b"text,label\n"), "t.csv: holds no labelled rows"),
    # the quote opens on line 3; the reader only notices at the end of the file
    Case("csv-unterminated-quote", lambda c: _task_file(c, "t.csv", b'text,label\na,x\n"b,y\nc,x\nd,y\n'),
         "t.csv line 3: not valid CSV (a quote opened here is never closed)"),
    Case("csv-unquoted-comma", lambda c: _task_file(c, "t.csv", b"text,label\nhello, world,a\nz,b\n"),
         "t.csv line 2: 3 field(s), but the header has 2"),
    Case("csv-column-twice", lambda c: _task_file(c, "t.csv", b"text,label,text\na,x,b\n"),
         "t.csv line 1: column 'text' appears twice"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_task_file(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer):
    check_hostile_input(case, Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None))


# --- cached zero-shot heads ------------------------------------------------------------------------------

@pytest.fixture
def encoder(tokenizer, monkeypatch):
    monkeypatch.setattr(heads, "_memory", {})
    return make_tiny_encoder(tokenizer)


def _plant(folder: Path, model, head: torch.Tensor, classes=CLASSES) -> Path:
    """A head file where the cache looks for this model's head, written past the finite-tensor guard."""
    key = heads.head_key(model.fingerprint(), CLASSES, TEMPLATES, type(model).__name__)
    path = folder / f"{key}.safetensors"
    folder.mkdir(exist_ok=True)
    save_file({"head": head}, str(path), metadata={"classes": json.dumps(list(classes))})
    return path


def _fresh(model) -> torch.Tensor:
    return model.zero_shot_head(CLASSES, TEMPLATES)


BAD_HEADS = {
    "wrong-width": lambda fresh: torch.zeros(2, fresh.shape[1] + 1),
    "extra-row": lambda fresh: torch.cat([fresh, fresh[:1]]),
    "missing-row": lambda fresh: fresh[:1].clone(),
    "nan": lambda fresh: torch.full_like(fresh, float("nan")),
    "inf": lambda fresh: fresh.clone().index_fill_(1, torch.tensor([0]), float("inf")),
    "float64": lambda fresh: fresh.double(),
    "float16": lambda fresh: fresh.half(),
    "integer": lambda fresh: fresh.long(),
    "one-dimensional": lambda fresh: fresh.flatten(),
}


@pytest.mark.parametrize("bad", BAD_HEADS, ids=list(BAD_HEADS))
def test_a_cached_head_unlike_a_fresh_one_is_recomputed(bad, encoder, tmp_path):
    fresh = _fresh(encoder)
    path = _plant(tmp_path, encoder, BAD_HEADS[bad](fresh))
    head = heads.zero_shot_head(encoder, CLASSES, TEMPLATES, folder=tmp_path)
    assert head.dtype == fresh.dtype and torch.allclose(head, fresh)
    stored = read_safetensors(path)[0]["head"]
    assert stored.shape == fresh.shape and torch.allclose(stored, fresh), "the bad file is replaced"


def test_a_cached_head_saved_for_other_classes_is_recomputed(encoder, tmp_path):
    fresh = _fresh(encoder)
    _plant(tmp_path, encoder, fresh.flip(0).contiguous(), classes=("spam", "city"))
    assert torch.allclose(heads.zero_shot_head(encoder, CLASSES, TEMPLATES, folder=tmp_path), fresh)


def test_a_good_cached_head_is_used(encoder, tmp_path):
    fresh = _fresh(encoder)
    planted = torch.nn.functional.normalize(torch.randn(fresh.shape), dim=-1)
    _plant(tmp_path, encoder, planted)
    assert torch.equal(heads.zero_shot_head(encoder, CLASSES, TEMPLATES, folder=tmp_path), planted)


def test_a_head_changed_in_memory_is_not_returned_again(encoder, tmp_path):
    fresh = _fresh(encoder)
    given = heads.zero_shot_head(encoder, CLASSES, TEMPLATES, folder=tmp_path)
    given.fill_(float("nan"))  # a caller changed the tensor it was given in place
    assert torch.allclose(heads.zero_shot_head(encoder, CLASSES, TEMPLATES, folder=tmp_path), fresh)
    key = next(iter(heads._memory))
    heads._memory[key] = torch.zeros(3, fresh.shape[1])
    assert heads.zero_shot_head(encoder, CLASSES, TEMPLATES, folder=tmp_path).shape == fresh.shape


def test_a_model_whose_head_is_not_finite_is_named(encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(encoder, "zero_shot_head", lambda *a: torch.full((2, 32), float("nan")))
    with pytest.raises(TaskarithError, match="gives NaN or Inf embeddings for the class prompts"):
        heads.zero_shot_head(encoder, CLASSES, TEMPLATES, folder=tmp_path)
    assert not list(tmp_path.iterdir())


def test_finetune_recomputes_a_nan_cached_head(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer):
    """End to end: the planted NaN head was once blamed on the learning rate."""
    from taskarith.data import resolve_task
    from taskarith.models import load_family

    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(heads, "_memory", {})
    model = load_family("text-encoder", str(tiny_model_dir), max_length=16, device="cpu")
    data = resolve_task(csv_tasks[0])
    key = heads.head_key(model.fingerprint(), data.class_names, data.templates, type(model).__name__)
    path = tmp_path / "cache" / "heads" / f"{key}.safetensors"
    path.parent.mkdir(parents=True)
    save_file({"head": torch.full((len(data.class_names), 32), float("nan"))}, str(path),
              metadata={"classes": json.dumps(list(data.class_names))})
    ctx = Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None)
    result = CliRunner().invoke(app, ctx.finetune_args())
    assert result.exit_code == 0, (result.output, result.exception)
    assert torch.isfinite(read_safetensors(path)[0]["head"]).all()


# --- one fine-tune per output folder ---------------------------------------------------------------------

def test_a_second_finetune_into_a_locked_folder_fails_at_once(tmp_path, monkeypatch, tiny_model_dir, csv_tasks,
                                                              tokenizer):
    ctx = Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None)
    loaded = []
    monkeypatch.setattr("taskarith.models.load_model", lambda cfg: loaded.append(cfg))
    with run_lock(tmp_path / "out"):
        check_hostile_input(Case("finetune-locked", lambda c: c.finetune_args(), "another taskarith process",
                                 check=lambda c: _absent(c.tmp / "out" / "vector.safetensors")), ctx)
    assert not loaded, "the model is loaded only once the folder is ours"


def test_finetune_holds_its_folder_lock_while_it_trains(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer):
    ctx = Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run=None)
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    seen = []

    def finetune(*args, **kwargs):
        seen.append(held_run_folder())
        raise TaskarithError("stopped after the check")

    monkeypatch.setattr("taskarith.training.trainer.finetune", finetune)
    result = CliRunner().invoke(app, ctx.finetune_args())
    assert result.exit_code == 2 and "stopped after the check" in result.stderr, result.output
    assert seen == [(tmp_path / "out").absolute()]
