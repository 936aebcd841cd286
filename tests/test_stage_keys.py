"""Each stage is keyed on what it reads: the config settings its compute reads and the code that computes it.
A change elsewhere (the report's code, an analysis switched on, another stage's setting) computes nothing
again; a change to what a stage reads computes that stage again."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_config

import taskarith.run.artifacts as artifacts
from taskarith.config import ExperimentConfig
from taskarith.run import run_experiment
from taskarith.run.artifacts import STAGES, StageReads
import taskarith.run.code_closure as code_closure
from taskarith.run.code_closure import PACKAGE, closure, code_digest

QUIET = {"progress": False, "log": lambda *_: None}
READS = {name: value for name, value in vars(artifacts).items() if isinstance(value, StageReads)}


@pytest.fixture(autouse=True)
def fresh_digests():
    """Digests are cached per process: each test reads the source as it patches it."""
    _forget_the_source()
    yield
    _forget_the_source()


def _forget_the_source() -> None:
    for cached in (code_digest, code_closure.imports_of, code_closure._source):
        cached.cache_clear()


def _computed(monkeypatch, run: Path) -> list[str]:
    """The stages computed from here on, by their artifact's name: an artifact is written only when computed."""
    written: list[str] = []
    real = artifacts.write_json

    def write_json(path: Path, data) -> None:
        written.append(path.relative_to(run / STAGES).as_posix())
        real(path, data)

    monkeypatch.setattr(artifacts, "write_json", write_json)
    return written


def _edit(monkeypatch, module: str) -> None:
    """The package's source as it reads after an edit of `module` (a path under the package)."""
    target = (PACKAGE / module).resolve()
    real = Path.read_bytes
    assert target.is_file()
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: real(self) + (b"\n# edited\n" if self.resolve() == target else b""))
    _forget_the_source()


def _artifacts(run: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(run / STAGES).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in (run / STAGES).rglob("*.json")}


def _config(tiny_model_dir, csv_tasks, eval: dict = {}, analysis: dict = {}) -> ExperimentConfig:
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"alphas": [0.0, 0.5, 1.0], **eval}, analysis=analysis)
    return cfg.model_copy(update={"paradigms": ["attention"]})


def test_no_stage_reads_the_report_and_evaluation_reads_the_merge_rules():
    for name, reads in READS.items():
        assert not any(m.startswith(("taskarith.report", "taskarith.cli", "taskarith.api"))
                       for m in closure(reads.code)), name
    assert {"taskarith.merging.rules", "taskarith.evaluate", "taskarith.run.experiment"} <= closure(
        artifacts.EVALUATE.code)
    assert "taskarith.merging.rules" not in closure(artifacts.SIMILARITY.code)


def test_no_stage_reads_the_run_name_seeds_resources_or_analysis_switches():
    tree = ExperimentConfig().model_dump(mode="json")
    for name, reads in READS.items():
        for key in reads.config + reads.ignores:
            node = tree
            for part in key.split("."):
                node = node[part]  # every key names a section or setting of the config
        assert not {k.split(".")[0] for k in reads.config} & {"name", "seeds", "resources", "analysis"}, name


def test_a_report_only_change_computes_nothing(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    cfg = _config(tiny_model_dir, csv_tasks)
    run_experiment(cfg, tmp_path, **QUIET)
    before = _artifacts(tmp_path)
    assert {"seed0/attention/evaluate.json", "seed0/attention/negate.json", "analysis/similarity.json"} <= set(before)
    _edit(monkeypatch, "report/markdown.py")
    written = _computed(monkeypatch, tmp_path)
    run_experiment(cfg, tmp_path, **QUIET)
    assert written == [] and _artifacts(tmp_path) == before


def test_an_edit_to_the_merge_rules_computes_the_seed_stages_again(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    cfg = _config(tiny_model_dir, csv_tasks)
    run_experiment(cfg, tmp_path, **QUIET)
    _edit(monkeypatch, "merging/rules.py")
    written = _computed(monkeypatch, tmp_path)
    run_experiment(cfg, tmp_path, **QUIET)
    assert sorted(written) == ["seed0/attention/evaluate.json", "seed0/attention/negate.json"]  # no analysis merges


def test_switching_an_analysis_on_computes_only_that_analysis(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    run_experiment(_config(tiny_model_dir, csv_tasks, analysis={"similarity": False}), tmp_path, **QUIET)
    written = _computed(monkeypatch, tmp_path)
    run_experiment(_config(tiny_model_dir, csv_tasks), tmp_path, **QUIET)
    assert written == ["analysis/similarity.json"]


def test_an_eval_setting_computes_again_the_stages_that_read_it(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    run_experiment(_config(tiny_model_dir, csv_tasks), tmp_path, **QUIET)
    written = _computed(monkeypatch, tmp_path)
    run_experiment(_config(tiny_model_dir, csv_tasks, eval={"merges": ["ties"]}), tmp_path, **QUIET)
    assert written == ["seed0/attention/evaluate.json"]
    written.clear()
    run_experiment(_config(tiny_model_dir, csv_tasks, eval={"merges": ["ties"], "negation_keep": 0.5}), tmp_path,
                   **QUIET)
    assert written == ["seed0/attention/negate.json"]
