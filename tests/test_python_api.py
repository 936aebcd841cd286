"""The Python surface: every public name resolves, `import taskarith` stays cheap, the notebook example of
docs/python-api.md runs as written and needs no name outside `ta.*`, and score, applied and finetune do what
their docstrings say."""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from test_extract import _finetuned, _save

import taskarith
import taskarith as ta
from conftest import make_tiny_encoder
from taskarith.data import resolve_task
from taskarith.evaluate import accuracies, make_evalset
from taskarith.groundwork.errors import TaskarithError
from taskarith.models.heads import zero_shot_head

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"


def _code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_every_public_name_resolves():
    assert set(taskarith.__all__) >= {"TaskVector", "load_model", "finetune", "score", "applied", "merge", "extract",
                                      "export", "run_experiment", "PARADIGMS", "MERGE_METHODS", "FAMILIES", "PRESETS",
                                      "TASKS"}
    for name in taskarith.__all__:
        assert getattr(taskarith, name) is not None, name
    assert "ties" in taskarith.MERGE_METHODS and "attention" in taskarith.PARADIGMS
    from taskarith.vectors import TaskVector

    assert taskarith.TaskVector is TaskVector


def test_import_is_cheap():
    code = "import sys, taskarith; print('torch' in sys.modules, taskarith.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", taskarith.__version__]


def _taskarith_names(tree: ast.AST) -> tuple[list[str], list[str]]:
    """(imports that reach past `ta`, names read as ta.NAME) in one code block."""
    aliases, reached = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "taskarith":
                    aliases.add(alias.asname or alias.name)
                elif alias.name.startswith("taskarith."):
                    reached.append(alias.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "taskarith":
            reached.append(f"from {node.module} import ...")
    used = [node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases]
    return reached, used


def test_the_doc_uses_only_public_names():
    blocks = _code_blocks()
    assert blocks
    for block in blocks:
        reached, used = _taskarith_names(ast.parse(block))
        assert reached == [], reached
        assert used and set(used) <= set(taskarith.__all__), sorted(set(used) - set(taskarith.__all__))
    # prose and tables too: every `ta.NAME` the page mentions is public
    mentioned = set(re.findall(r"\bta\.([A-Za-z]\w*)", DOC.read_text()))
    assert mentioned <= set(taskarith.__all__), sorted(mentioned - set(taskarith.__all__))


def test_the_public_names_check_finds_an_internal_import():
    reached, used = _taskarith_names(ast.parse("import taskarith as ta\nfrom taskarith.vectors import combine\n"
                                               "ta.score(1, 2)\nta.applied_in_place(1)"))
    assert reached == ["from taskarith.vectors import ..."] and used == ["score", "applied_in_place"]


def test_the_notebook_example_runs_as_written(tmp_path, tokenizer, csv_tasks, monkeypatch):
    models = tmp_path / "models"
    _save(make_tiny_encoder(tokenizer).net, tokenizer, models / "base")
    _finetuned(tokenizer, models / "ft-spam", scale=0.02)
    _finetuned(tokenizer, models / "ft-city", scale=0.03)
    (tmp_path / "data").mkdir()
    shutil.copy(csv_tasks[0], tmp_path / "data" / "spam-or-city.csv")  # city and spam texts over the tiny vocabulary
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    printed, scope = io.StringIO(), {}
    with contextlib.redirect_stdout(printed):
        exec(compile(_code_blocks()[0], str(DOC), "exec"), scope)
    text = printed.getvalue()
    assert float(re.search(r"max difference: (\S+)", text).group(1)) < 1e-5, text
    assert (tmp_path / "models" / "merged" / "config.json").exists()
    assert (tmp_path / "vectors" / "spam-or-city" / "vector.safetensors").exists()
    model, task, merged, own = scope["model"], scope["task"], scope["merged"], scope["own"]
    assert own.meta["task"] == "spam-or-city" and own.meta["paradigm"] == "attention"
    base, tuned = (float(re.search(rf"{label}: (\S+)", text).group(1)) for label in ("base", "fine-tuned"))
    assert tuned > base, text  # 100 steps learn two classes of disjoint words
    # each score is the accuracy the library's own evaluation gives, with θ0's zero-shot head
    data = resolve_task(task)
    head = zero_shot_head(model, data.class_names, data.templates)
    evalset = make_evalset(model, data.test.inputs, data.test.labels, 64)
    expected = accuracies(model, [merged], [[0.5], [1.0]], evalset, head).tolist()
    assert f"{{0.5: {expected[0]}, 1.0: {expected[1]}}}" in text, text


@pytest.fixture
def scored(tmp_path, tiny_model_dir, csv_tasks, monkeypatch):
    """The tiny model, its file task, and a small attention-only vector trained on it without a folder."""
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path)
    model = ta.load_model(str(tiny_model_dir), max_length=16, device="cpu")
    tau = ta.finetune(model, csv_tasks[0], "attention", steps=3, batch_size=8, lr=1e-2, warmup_steps=0,
                      progress=False)
    return model, csv_tasks[0], tau


def test_finetune_without_a_folder_leaves_nothing_and_returns_the_vector(scored, tmp_path):
    model, task, tau = scored
    assert {p.name for p in tmp_path.iterdir()} <= {"cache", "tmp"} and list((tmp_path / "tmp").iterdir()) == []
    assert tau.meta["task"] == "places" and tau.meta["train_config"]["steps"] == 3
    assert tau.meta["train_config"]["lr"] == 1e-2 and any(t.abs().sum() > 0 for t in tau.tensors.values())
    tau.check_base(model)


def test_score_sweeps_and_applied_restores(scored):
    model, task, tau = scored
    base = ta.score(model, task)
    sweep = ta.score(model, task, [tau], [[0.0], [1.0], [2.0]])
    assert isinstance(base, float) and isinstance(sweep, list) and len(sweep) == 3
    assert sweep[0] == base and sweep[1] == ta.score(model, task, [tau], [1.0]) == ta.score(model, task, [tau])
    before = {n: t.clone() for n, t in model.named_weights().items()}
    with ta.applied(model, [tau], [2.0]):
        name = next(iter(tau.tensors))
        assert torch.equal(model.named_weights()[name], before[name] + 2.0 * tau.tensors[name])
    assert all(torch.equal(t, before[n]) for n, t in model.named_weights().items())
    assert all(isinstance(ta.score(model, task, split=part), float) for part in ("val", "train"))


def test_bad_calls_name_the_parameter(scored):
    model, task, tau = scored
    for call, error, fragment in [
        (lambda: ta.score(model, task, [tau], [1.0, 2.0]), TaskarithError, "score: 2 coefficients for 1 task vectors"),
        (lambda: ta.score(model, task, [tau], "1"), TypeError, "score: coefficients must be a list of numbers"),
        (lambda: ta.score(model, task, split="tst"), TaskarithError, "unknown split 'tst' (did you mean 'test'?)"),
        (lambda: ta.score(model, task, batch_size=0), TaskarithError, "score: batch_size must be at least 1"),
        (lambda: ta.applied(model, [tau], [[1.0]]), TypeError, "applied: coefficients must be a list of numbers"),
        (lambda: ta.applied(model, [tau * 1.0 + tau], ["x"]), TypeError, "applied: coefficients[0] must be a number"),
        (lambda: ta.finetune(model, task, "atention"), TaskarithError, "unknown paradigm 'atention' (did you mean"),
        (lambda: ta.finetune(model, task, stepz=3), TypeError, "finetune() got an unexpected keyword argument 'stepz'"),
        (lambda: ta.finetune(model, task, steps=0), TaskarithError, "finetune: steps: Input should be greater than 0"),
        (lambda: ta.finetune(model, task, max_train=0), TaskarithError, "finetune: max_train must be at least 1"),
        (lambda: ta.finetune(model, task, preset="nope"), TaskarithError, "unknown preset 'nope'"),
        (lambda: ta.finetune("model", task), TypeError, "finetune: model must be a Model"),
    ]:
        with pytest.raises(error) as caught:
            call()
        assert fragment in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_a_linear_vector_is_scored_through_the_linearized_model_and_never_applied(scored):
    model, task, _ = scored
    linear = ta.finetune(model, task, "linear", steps=2, batch_size=8, warmup_steps=0, progress=False)
    assert linear.linear
    sweep = ta.score(model, task, [linear], [[0.0], [1.0]])
    assert sweep[0] == ta.score(model, task) and all(0.0 <= a <= 1.0 for a in sweep)
    with pytest.raises(TaskarithError, match="is a linear task vector, which acts through the linearized model"):
        ta.applied(model, [linear])
