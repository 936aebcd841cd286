"""Each stage keeps its result with the inputs it came from: a run started again reuses what is unchanged,
computes again what is not, and never trusts a damaged artifact."""

from __future__ import annotations

import json
import os

import pytest

from conftest import tiny_config

import taskarith.run.stages as stages
from taskarith.groundwork.errors import TaskarithError
from taskarith.run import run_experiment
from taskarith.run.artifacts import STAGES

QUIET = {"progress": False, "log": lambda *_: None}


def _counting(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = stages.evaluate_vectors
    monkeypatch.setattr(stages, "evaluate_vectors",
                        lambda exp, vectors, seed=0: calls.append("eval") or real(exp, vectors, seed))
    return calls


def _without_times(path) -> dict:
    results = json.loads(path.read_text())
    for key in ("timings", "created"):
        results.pop(key)
    return results


def test_a_second_run_reuses_every_stage_and_gives_the_same_results(tiny_model_dir, csv_tasks, tmp_path,
                                                                     monkeypatch):
    cfg = tiny_config(tiny_model_dir, csv_tasks)
    first = _without_times(run_experiment(cfg, tmp_path, **QUIET))
    files = sorted(p.relative_to(tmp_path / STAGES).as_posix() for p in (tmp_path / STAGES).rglob("*.json"))
    assert "seed0/attention/evaluate.json" in files and "seed0/attention/negate.json" in files
    assert "analysis/similarity.json" in files
    calls = _counting(monkeypatch)
    assert _without_times(run_experiment(cfg, tmp_path, **QUIET)) == first
    assert calls == []


def test_a_changed_input_computes_the_stage_again(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"negation": False})
    cfg = cfg.model_copy(update={"paradigms": ["attention"]})
    run_experiment(cfg, tmp_path, **QUIET)
    calls = _counting(monkeypatch)
    # a vector file replaced (here: touched) is a new input
    vector = next((tmp_path / "vectors" / "seed0" / "attention").rglob("vector.safetensors"))
    st = vector.stat()
    os.utime(vector, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    run_experiment(cfg, tmp_path, **QUIET)
    assert calls == ["eval"]
    # another α grid is another config
    other = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"alphas": [0.0, 0.7]})})
    results = json.loads(run_experiment(other, tmp_path, **QUIET).read_text())
    assert calls == ["eval", "eval"]
    assert set(results["paradigms"]["attention"]["seeds"]["0"]["addition"]["curve"]) == {"0", "0.7"}


def test_a_damaged_artifact_is_computed_again(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"negation": False})
    cfg = cfg.model_copy(update={"paradigms": ["attention"]})
    first = _without_times(run_experiment(cfg, tmp_path, **QUIET))
    artifact = tmp_path / STAGES / "seed0" / "attention" / "evaluate.json"
    calls = _counting(monkeypatch)
    stored = json.loads(artifact.read_text())
    edited = json.dumps({**stored, "result": {**stored["result"], "individual": 1}}).encode()
    for damage in (b'{"inputs": ', b"[1, 2]", edited):
        artifact.write_bytes(damage)
        assert _without_times(run_experiment(cfg, tmp_path, **QUIET)) == first
    assert calls == ["eval"] * 3


def test_an_artifact_reached_through_a_planted_symlink_is_not_read(tiny_model_dir, csv_tasks, tmp_path):
    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"negation": False})
    cfg = cfg.model_copy(update={"paradigms": ["attention"]})
    run_experiment(cfg, tmp_path / "run", **QUIET)
    planted = tmp_path / "elsewhere"
    (tmp_path / "run" / STAGES).rename(planted)
    (tmp_path / "run" / STAGES).symlink_to(planted)
    with pytest.raises(TaskarithError, match="is a symlink; refusing to write through it"):
        run_experiment(cfg, tmp_path / "run", **QUIET)


def test_a_seed_lets_its_vectors_go_once_evaluated(tiny_model_dir, csv_tasks, tmp_path, monkeypatch):
    import gc
    import weakref

    cfg = tiny_config(tiny_model_dir, csv_tasks).model_copy(update={"paradigms": ["attention"]})
    evaluated: dict[int, list] = {}
    alive_then: list[int] = []
    real = stages.evaluate_vectors

    def spy(exp, vectors, seed=0):
        gc.collect()
        alive_then.append(sum(ref() is not None for refs in evaluated.values() for ref in refs))
        evaluated[seed] = [weakref.ref(tv) for tv in vectors.values()]
        return real(exp, vectors, seed)

    monkeypatch.setattr(stages, "evaluate_vectors", spy)
    results = json.loads(run_experiment(cfg, tmp_path, seeds=3, **QUIET).read_text())
    assert sorted(evaluated) == [0, 1, 2] and alive_then == [0, 0, 0]  # seed 0's too: the analyses read files
    assert "negation" in results["paradigms"]["attention"]["seeds"]["0"] and "similarity" in results["analysis"]


def test_a_units_label_names_its_vector_folder(tiny_model_dir, csv_tasks):
    from types import SimpleNamespace

    from taskarith.run import Unit
    from taskarith.run.finetunes import unit_label, unit_vector_file

    exp = SimpleNamespace(cfg=tiny_config(tiny_model_dir, csv_tasks))  # a unit's label reads train.lr only
    lr = exp.cfg.train.lr
    units = [Unit(0, "attention", "t"), Unit(0, "attention", "t", lr=lr), Unit(2, "linear", "t", lr=lr * 3),
             Unit(1, "attention", "t", preset="attention+mlp"), Unit(1, "attention", "t", preset="regex:../x", lr=0.5)]
    labels = [unit_label(exp, u) for u in units]
    assert labels[:2] == ["attention", "attention"] and labels[2] == f"linear-lr{lr * 3:g}"
    assert labels[3] == "attention-attention+mlp" and labels[4].startswith("attention-regex-")
    assert labels == [unit_vector_file(exp, u).parent.parent.name for u in units]
