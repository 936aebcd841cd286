"""A learning rate per paradigm, chosen on validation: the rule, the config, the run, the report."""

from __future__ import annotations

import json

import pytest

from taskarith.config import validate
from taskarith.groundwork.errors import TaskarithError
from taskarith.run.lr_search import choose_lr, search_learning_rates
from taskarith.report.markdown import protocol
from taskarith.run import Experiment, run_experiment
from conftest import tiny_config


def test_choose_lr_takes_the_best_and_keeps_the_default_on_a_tie():
    assert choose_lr({1e-4: 0.70, 3e-4: 0.75}, default=1e-4) == 3e-4
    assert choose_lr({1e-4: 0.75, 3e-4: 0.75}, default=1e-4) == 1e-4
    assert choose_lr({1e-4: 0.60, 3e-4: 0.75, 1e-3: 0.75}, default=1e-4) == 3e-4  # smallest tied


def test_config_requires_the_default_rate_among_the_candidates(tiny_model_dir, csv_tasks):
    cfg = tiny_config(tiny_model_dir, csv_tasks)
    assert cfg.lr_search == []
    with pytest.raises(TaskarithError, match="train.lr = 0.001 must be one of the candidates"):
        _with_search(cfg, [0.01])
    assert _with_search(cfg, [0.01, 0.001, 0.01]).lr_search == [0.001, 0.01]


def _with_search(cfg, rates):
    return validate({**cfg.model_dump(), "lr_search": rates})


def test_search_reads_validation_only_and_the_run_reuses_seed_0(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    cfg = _with_search(tiny_config(tiny_model_dir, csv_tasks, eval={"negation": False}), [1e-3, 1e-1])
    cfg = cfg.model_copy(update={"paradigms": ["attention"]})
    exp = Experiment(cfg, tmp_path / "spy", progress=False, log=lambda *_: None)
    asked = []
    scores = exp.scores
    exp.scores = lambda vectors, combos, sets: asked.extend(s for _, s in sets) or scores(vectors, combos, sets)
    search = search_learning_rates(exp)
    assert set(asked) == {"val"}  # test is never read to choose
    assert set(search["attention"]["validation"]) == {"0.001", "0.1"}
    assert search["attention"]["chosen"] in (1e-3, 1e-1)

    import taskarith.run.finetunes

    calls = []
    real = taskarith.run.finetunes.finetune
    monkeypatch.setattr(taskarith.run.finetunes, "finetune", lambda *a, **k: calls.append(a[-1].task) or real(*a, **k))
    path = run_experiment(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    assert len(calls) == 2 * len(csv_tasks)  # each rate once per task; seed 0 at the chosen rate is reused
    results = json.loads(path.read_text())
    chosen = results["lr_search"]["attention"]["chosen"]
    entry = results["paradigms"]["attention"]
    assert entry["lr"] == chosen
    assert all(("-lr0.1" in v) == (chosen == 0.1) for v in entry["seeds"]["0"]["vectors"].values())
    assert (tmp_path / "run" / "vectors" / "seed0" / "attention-lr0.1").is_dir()
    assert (tmp_path / "run" / "vectors" / "seed0" / "attention").is_dir()
    label = "attention-lr0.1" if chosen == 0.1 else "attention"  # the chosen rate's stages sit by its vectors
    assert (tmp_path / "run" / "stages" / "seed0" / label / "evaluate.json").is_file()
    assert "lr_search_seconds" in results["timings"]
    text = protocol(results)
    assert "not the paper's single rate" in text and f"Attention-only {chosen:g}" in text
    assert "| lr 0.001 (%) | lr 0.1 (%) | Chosen |" in text


def test_without_search_the_protocol_names_one_rate(tiny_model_dir, csv_tasks, tmp_path):
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"negation": False})
    cfg = cfg.model_copy(update={"paradigms": ["attention"]})
    results = json.loads(run_experiment(cfg, tmp_path, progress=False, log=lambda *_: None).read_text())
    assert "lr_search" not in results and results["paradigms"]["attention"]["lr"] == cfg.train.lr
    assert "one learning rate, 0.001, as in the paper" in protocol(results)


def test_analyze_reads_the_vectors_at_the_rate_the_run_chose(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import taskarith.report
    import taskarith.run.lr_search
    from taskarith.cli.analyze import analyze_app

    monkeypatch.setattr(taskarith.run.lr_search, "choose_lr", lambda validation, default: max(validation))
    monkeypatch.setattr(taskarith.report, "write_report", lambda run_dir: run_dir / "report.md")
    cfg = _with_search(tiny_config(tiny_model_dir, csv_tasks, eval={"negation": False}), [1e-3, 1e-1])
    cfg = cfg.model_copy(update={"paradigms": ["attention"]})
    before = json.loads(run_experiment(cfg, tmp_path, progress=False, log=lambda *_: None).read_text())
    assert before["paradigms"]["attention"]["lr"] == 0.1
    (tmp_path / "stages" / "analysis" / "similarity.json").unlink()
    result = CliRunner().invoke(analyze_app, ["similarity", str(tmp_path)])
    assert result.exit_code == 0, result.output
    # the same vectors as the run's analyses read: train.lr's, also on disk, would give other cosines
    after = json.loads((tmp_path / "results.json").read_text())
    assert after["analysis"]["similarity"] == before["analysis"]["similarity"]
