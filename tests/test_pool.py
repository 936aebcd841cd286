"""A seed study spread over runs (`--seeds A-B`) and pooled (`taskarith results pool`) equals one run of all
its seeds; pieces that are not one study are refused in one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.groundwork.errors import TaskarithError
from taskarith.run import run_experiment
from taskarith.run.pool import pool_results
from taskarith.run.seeds import parse_seeds, seed_indices

from conftest import tiny_config


def test_seed_ranges_parse():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("3-5") == [3, 4, 5]
    assert seed_indices(None, 2) == [0, 1] and seed_indices([4, 3], 1) == [3, 4]
    for bad in ("0", "5-3", "a-b", "1-", "-2", "2,3"):
        with pytest.raises(TaskarithError):
            parse_seeds(bad)


@pytest.fixture(scope="module")
def pieces(tmp_path_factory, tiny_model_dir, csv_tasks):
    root = tmp_path_factory.mktemp("study")
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"alphas": [0.0, 0.5, 1.0]})
    cfg = cfg.model_copy(update={"paradigms": ["nonlinear", "attention"]})
    quiet = {"progress": False, "log": lambda *_: None}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TASKARITH_CACHE", str(root / "cache"))
        run_experiment(cfg, root / "first", seeds=[0, 1], **quiet)
        run_experiment(cfg, root / "second", seeds=[2], **quiet)
        run_experiment(cfg, root / "whole", seeds=3, **quiet)
    return root


def load(folder):
    return json.loads((folder / "results.json").read_text())


def scores(record: dict) -> dict:
    """What a seed measured, without its timings."""
    return {p: {s: {k: r[k] for k in ("individual", "addition", "negation") if k in r}
                for s, r in entry["seeds"].items()} for p, entry in record["paradigms"].items()}


def test_a_piece_without_the_first_seed_has_no_analyses_or_negation(pieces):
    second = load(pieces / "second")
    assert second["seeds"] == [2]
    assert second["analysis"] == {}
    assert all("negation" not in r for e in second["paradigms"].values() for r in e["seeds"].values())


def test_pooled_pieces_equal_one_run_of_every_seed(pieces):
    first, second, whole = load(pieces / "first"), load(pieces / "second"), load(pieces / "whole")
    pooled = pool_results([second, first], ["second", "first"], commit="c", created="now")
    assert pooled["seeds"] == [0, 1, 2] and pooled["config"]["seeds"] == 3
    assert scores(pooled) == scores(whole)
    for p in whole["paradigms"]:
        assert pooled["paradigms"][p]["summary"]["absolute"] == pytest.approx(whole["paradigms"][p]["summary"]["absolute"])
    assert pooled["analysis"]["similarity"] == whole["analysis"]["similarity"]
    assert pooled["analysis"]["advantage"]["attention"]["mean"] == pytest.approx(
        whole["analysis"]["advantage"]["attention"]["mean"])
    assert [p["run"] for p in pooled["pooled_from"]] == ["second", "first"]
    assert set(pooled["seed_commits"]) == {"0", "1", "2"}


def test_pieces_of_different_studies_are_refused(pieces):
    first, second = load(pieces / "first"), load(pieces / "second")
    changed = json.loads(json.dumps(second))
    changed["config"]["train"]["lr"] = 0.5
    with pytest.raises(TaskarithError, match=r"second: config.train.lr differs from first"):
        pool_results([first, changed], ["first", "second"], commit=None, created="now")
    with pytest.raises(TaskarithError, match="seed 0 is in both first and again"):
        pool_results([first, first], ["first", "again"], commit=None, created="now")


def test_the_pool_command_writes_a_report_and_refuses_bad_calls(pieces, tmp_path):
    out = tmp_path / "pooled"
    result = CliRunner().invoke(app, ["results", "pool", str(pieces / "first"), str(pieces / "second"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    assert "Pooled with `taskarith results pool`" in text and "**Seeds:** 0, 1, 2" in text
    for args in ([str(pieces / "first"), str(pieces / "first")],
                 [str(pieces / "first"), str(pieces / "second"), "--out", str(pieces / "first")],
                 [str(pieces / "first"), str(tmp_path / "nowhere")]):
        if "--out" not in args:
            args += ["--out", str(tmp_path / "refused")]
        result = CliRunner().invoke(app, ["results", "pool", *args])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "refused").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    record = load(pieces / "second")
    del record["paradigms"]["attention"]["seeds"]
    (broken / "results.json").write_text(json.dumps(record))
    result = CliRunner().invoke(app, ["results", "pool", str(pieces / "first"), str(broken), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "malformed entry" in result.stderr and "Traceback" not in result.output
