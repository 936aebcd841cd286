"""The experiment pipeline end to end on a tiny random model and two file tasks."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

import pytest

from taskarith.evaluate import choose_alpha, choose_negation_alpha, normalized_accuracy
from taskarith.results_record import ResultsRecord
from taskarith.run import Experiment, Unit, run_experiment, trained_vector
from taskarith.run.protocol import evaluate_vectors, negate_each

from conftest import tiny_config

PUBLISHED = sorted((Path(__file__).parent.parent / "docs" / "results").glob("*/results.json"))


def departures(value, tp, where: str = "results") -> list[str]:
    """Where a JSON value departs from a type of taskarith.results_record: a key missing or unexpected, or a
    value of another kind."""
    if typing.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        hints = typing.get_type_hints(tp)
        out = [f"{where}.{k}: missing" for k in sorted(tp.__required_keys__ - set(value))]
        out += [f"{where}.{k}: not in {tp.__name__}" for k in sorted(set(value) - set(hints))]
        return out + [f for k in value if k in hints for f in departures(value[k], hints[k], f"{where}.{k}")]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        found = [departures(value, a, where) for a in args]
        return [] if [] in found else min(found, key=len)
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [f for k, v in value.items() for f in departures(v, args[1], f"{where}.{k}")]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [f for i, v in enumerate(value) for f in departures(v, args[0], f"{where}[{i}]")]
    kinds = {typing.Any: object, float: (int, float), type(None): type(None)}.get(tp, tp)
    return [] if isinstance(value, kinds) and not (isinstance(value, bool) and tp is not bool) else \
        [f"{where}: {type(value).__name__}, not {tp}"]


def published(path: Path) -> dict:
    """A published record, less the two fields a pooled one adds to a run's (docs/results-schema.md)."""
    record = json.loads(path.read_text())
    pooled = {k: record.pop(k) for k in ("seed_commits", "pooled_from") if k in record}
    assert set(pooled) in (set(), {"seed_commits", "pooled_from"})
    return record


def test_the_record_types_describe_every_published_record():
    assert PUBLISHED
    for path in PUBLISHED:
        assert departures(published(path), ResultsRecord, path.parent.name) == []


def test_the_record_types_catch_a_departure():
    record = published(PUBLISHED[0])
    entry = next(iter(record["paradigms"].values()))
    entry["seeds"]["0"]["addition"]["alpha"] = "0.3"
    del entry["summary"]["absolute"]
    entry["selection"]["extra"] = 1
    found = departures(record, ResultsRecord)
    assert len(found) == 3 and all(".paradigms." in f for f in found), found


def test_normalized_accuracy_is_per_task_then_averaged():
    unified = {"a": 0.5, "b": 0.9}
    individual = {"a": 1.0, "b": 0.9}
    # per task: 0.5 and 1.0 -> 0.75; a ratio of means would give 0.7 / 0.95
    assert normalized_accuracy(unified, individual) == pytest.approx(0.75)


def test_choose_alpha_takes_best_validation_score_and_smallest_on_ties():
    assert choose_alpha([0.0, 0.5, 1.0], [0.1, 0.9, 0.9]) == 0.5


def test_negation_rule():
    alphas = [0.0, 0.5, 1.0, 1.5]
    target = [0.9, 0.6, 0.3, 0.1]
    control = [0.80, 0.79, 0.77, 0.70]
    # 0.95 * 0.80 = 0.76: α = 1.5 drops control too far, α = 1.0 is the strongest allowed
    assert choose_negation_alpha(alphas, target, control, pretrained_control=0.80) == 1.0
    assert choose_negation_alpha(alphas, target, [0.1] * 4, pretrained_control=0.80) == 0.0


def test_alpha_is_chosen_on_validation_only(tiny_model_dir, csv_tasks, tmp_path):
    """Scrambling every test label must change test accuracy but never the chosen α."""
    cfg = tiny_config(tiny_model_dir, csv_tasks)
    exp = Experiment(cfg, tmp_path, progress=False, log=lambda *_: None)
    vectors = {t: trained_vector(exp, Unit(0, "nonlinear", t)) for t in exp.tasks}
    pre = exp.pretrained()

    def evaluate() -> dict:
        return {**evaluate_vectors(exp, vectors), "negation": negate_each(exp, vectors, pre)}

    clean = evaluate()
    for t in exp.tasks:
        evalset = exp.evalsets[t]["test"]
        n_classes = exp.heads[t].shape[0]
        evalset.labels = [(y + 1) % n_classes for y in evalset.labels]
    scrambled = evaluate()
    assert scrambled["addition"]["alpha"] == clean["addition"]["alpha"]
    for a, point in clean["addition"]["curve"].items():
        assert scrambled["addition"]["curve"][a]["val_norm"] == point["val_norm"]
    assert scrambled["addition"]["test"] != clean["addition"]["test"]
    for t, neg in clean["negation"].items():
        assert scrambled["negation"][t]["alpha"] == neg["alpha"]


def test_end_to_end_run_and_report(tiny_model_dir, csv_tasks, tmp_path):
    from taskarith.report import load_results, write_report

    cfg = tiny_config(tiny_model_dir, csv_tasks)
    path = run_experiment(cfg, tmp_path, seeds=2, progress=False, log=lambda *_: None)
    results = load_results(path)
    assert results["schema"] == 1 and results["seeds"] == [0, 1]
    assert set(results["paradigms"]) == {"nonlinear", "linear", "attention"}
    for entry in results["paradigms"].values():
        assert set(entry["seeds"]) == {"0", "1"}
        assert "negation" not in entry["seeds"]["1"]  # a protocol check: the first seed only
        for seed in entry["seeds"].values():
            add = seed["addition"]
            assert add["alpha"] in cfg.eval.alphas
            assert 0 <= add["absolute"] <= 1
            assert add["normalized"] == pytest.approx(
                normalized_accuracy(add["test"], seed["individual"]["test"]))
            assert set(seed.get("negation", entry["seeds"]["0"]["negation"])) == {"places", "reviews"}
    assert departures(json.loads(path.read_text()), ResultsRecord) == []
    report = write_report(tmp_path)
    first = report.read_text()
    (tmp_path / "report.md").unlink()
    assert write_report(tmp_path).read_text() == first
    assert "Attention-only" in first


def test_rerun_reuses_finished_vectors(tiny_model_dir, csv_tasks, tmp_path):
    cfg = tiny_config(tiny_model_dir, csv_tasks)
    run_experiment(cfg, tmp_path, progress=False, log=lambda *_: None)
    vector = next((tmp_path / "vectors").rglob("vector.safetensors"))
    stamp = vector.stat().st_mtime_ns
    first = json.loads((tmp_path / "results.json").read_text())
    run_experiment(cfg, tmp_path, progress=False, log=lambda *_: None)
    second = json.loads((tmp_path / "results.json").read_text())
    assert vector.stat().st_mtime_ns == stamp
    assert second["paradigms"]["linear"]["summary"] == first["paradigms"]["linear"]["summary"]


def test_a_locked_run_folder_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
    import subprocess
    import sys

    from taskarith.groundwork.errors import TaskarithError
    from taskarith.groundwork.lock import run_lock

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from taskarith.groundwork.lock import run_lock\n"
        f"with run_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TaskarithError, match=f"pid {holder.pid}"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # the dead holder's lock is stale and taken over
        pass


def test_zero_combinations_reuse_the_base_accuracy_and_match_a_full_sweep(tiny_model_dir, csv_tasks, tmp_path):
    from taskarith.evaluate import accuracies

    exp = Experiment(tiny_config(tiny_model_dir, csv_tasks), tmp_path, progress=False, log=lambda *_: None)
    t = exp.tasks[0]
    for paradigm in ("nonlinear", "linear"):
        tv = trained_vector(exp, Unit(0, paradigm, t))
        combos = [[0.0], [0.5], [-0.0], [1.0]]
        want = accuracies(exp.model, [tv], combos, exp.evalsets[t]["val"], exp.heads[t])
        assert list(exp.scores([tv], combos, [(t, "val")])[(t, "val")]) == list(want)
    from taskarith.evaluate import sweep

    before = exp.pretrained()["val"][t]
    evalset, preds = exp.evalsets[t]["val"], []
    sweep(exp.model, [], [[]], [evalset],
          lambda c, s, b, rep: preds.append(exp.model.logits(rep, exp.heads[t]).argmax(-1)))
    evalset.labels = preds  # new labels, θ0's own predictions: the cached accuracy must not be reused
    assert before < 1 and exp.scores([], [[]], [(t, "val")])[(t, "val")][0] == 1
