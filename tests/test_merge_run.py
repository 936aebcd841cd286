"""Merge methods inside a run: each on its own α grid, n/a where a method is not defined for a paradigm, and
the config's merge settings checked before any work."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import tiny_config

import taskarith.merging.methods as methods
from taskarith.groundwork.errors import TaskarithError
from taskarith.report import load_results, write_report
from taskarith.run import run_experiment

QUIET = {"progress": False, "log": lambda *_: None}


def test_a_method_not_defined_for_a_paradigm_is_na_and_grids_can_be_set(tiny_model_dir, csv_tasks, tmp_path,
                                                                          monkeypatch):
    ties = methods.MERGE_METHODS["ties"]
    monkeypatch.setitem(methods.MERGE_METHODS, "ties", dataclasses.replace(ties, paradigms=("nonlinear",)))
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"merges": ["ties", "dare"], "negation": False,
                                                       "merge_alphas": {"dare": [0.0, 2.0]}})
    cfg = cfg.model_copy(update={"paradigms": ["nonlinear", "linear"]})
    results = load_results(run_experiment(cfg, tmp_path, **QUIET))
    linear, nonlinear = (results["paradigms"][p]["seeds"]["0"]["merges"] for p in ("linear", "nonlinear"))
    assert set(linear["ties"]) == {"not_applicable"} and "linear" in linear["ties"]["not_applicable"]
    assert "alpha" in nonlinear["ties"]
    assert list(nonlinear["dare"]["curve"]) == ["0", "2"] and list(linear["dare"]["curve"]) == ["0", "2"]
    assert results["paradigms"]["linear"]["summary"]["merges"]["ties"] == {"not_applicable": linear["ties"][
        "not_applicable"]}
    ties_row = next(line for line in write_report(tmp_path).read_text().splitlines() if line.startswith("| TIES"))
    assert ties_row.count("n/a") == 1 and ties_row.count("(α ") == 1


@pytest.mark.parametrize("merges, grids, settings, message", [
    (["nope"], {}, {}, "eval.merges: 'nope' is not a method to compare with the plain sum"),
    (["task_arithmetic"], {}, {}, "eval.merges: 'task_arithmetic' is not a method"),
    (["ties"], {"dare": [1.0]}, {}, "eval.merge_alphas: 'dare' is not one of eval.merges (ties)"),
    (["ties"], {}, {"ties": {"density": 2}}, "eval.merge_settings.ties: density must lie in (0, 1], got 2.0"),
    (["ties"], {}, {"iso_c": {"density": 0.5}}, "eval.merge_settings.iso_c: "),
])
def test_merge_settings_are_checked_before_the_run_folder_exists(tiny_model_dir, csv_tasks, tmp_path, merges,
                                                                 grids, settings, message):
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"merges": merges, "merge_alphas": grids,
                                                       "merge_settings": settings})
    with pytest.raises(TaskarithError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_experiment(cfg, tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()


def test_a_grid_outside_the_range_is_a_config_error(tiny_model_dir, csv_tasks):
    with pytest.raises(TaskarithError, match="eval.merge_alphas.ties: .*α values must lie in"):
        tiny_config(tiny_model_dir, csv_tasks, eval={"merges": ["ties"], "merge_alphas": {"ties": [17.0]}})
    with pytest.raises(TaskarithError, match="an α grid needs at least one value"):
        tiny_config(tiny_model_dir, csv_tasks, eval={"merges": ["ties"], "merge_alphas": {"ties": []}})


def test_every_method_runs_on_every_paradigm_it_is_defined_for_and_is_na_on_the_others(tiny_model_dir, csv_tasks,
                                                                                        tmp_path):
    others = [m for m in methods.MERGE_METHODS if m != methods.BASELINE]
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={
        "merges": others, "negation": False, "merge_alphas": {m: [1.0] for m in others},
        "merge_data": {"fisher_examples": 4, "regmean_examples": 4, "batch_size": 2, "steps": 2}})
    cfg = cfg.model_copy(update={"paradigms": ["nonlinear", "linear", "attention"]})
    results = load_results(run_experiment(cfg, tmp_path, **QUIET))
    for paradigm, entry in results["paradigms"].items():
        for name in others:
            merged = entry["seeds"]["0"]["merges"][name]
            if paradigm in methods.MERGE_METHODS[name].paradigms:
                assert 0 <= merged["absolute"] <= 1 and list(merged["curve"]) == ["1"], (paradigm, name)
            else:
                assert set(merged) == {"not_applicable"}, (paradigm, name)
    assert {n for n in others if "not_applicable" in results["paradigms"]["linear"]["summary"]["merges"][n]} == {
        "fisher", "regmean"}
    report = write_report(tmp_path).read_text()
    assert "| AdaMerging (layer-wise) †" in report and "transductive" in report
