"""Merge rules: hand-computed values on small tensors, weights and sign election, provenance, the `vector merge`
command and the run's merge table."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import tiny_config

from taskarith.groundwork.errors import TaskarithError
from taskarith.merging import MERGE_METHODS
from taskarith.merging.merge import merge_vectors, tensors_sha256
from taskarith.merging.rules import (dare, disjoint_mean, magnitude_prune, random_prune, sign_elect, task_arithmetic,
                                     ties, weight_averaging)
from taskarith.vectors import TaskVector

META = {"base_hash": "h", "base_model": "m", "paradigm": "nonlinear"}


def vec(task: str, **tensors) -> TaskVector:
    return TaskVector({n: torch.tensor(v, dtype=torch.float32) for n, v in tensors.items()}, {**META, "task": task})


def test_task_arithmetic_is_the_sum():
    stack = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    assert torch.equal(task_arithmetic(stack), torch.tensor([4.0, -1.5]))


def test_weighted_sum_and_mean_by_hand():
    stack = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    assert torch.equal(task_arithmetic(stack, weights=[2.0, -1.0]), torch.tensor([-1.0, -4.5]))
    assert torch.equal(weight_averaging(stack), torch.tensor([2.0, -0.75]))
    # (1·1 + 3·3) / 4 and (1·−2 + 3·0.5) / 4
    assert torch.equal(weight_averaging(stack, weights=[1.0, 3.0]), torch.tensor([2.5, -0.125]))
    with pytest.raises(TaskarithError, match="sum of the weights, which is 0"):
        weight_averaging(stack, weights=[1.0, -1.0])


def test_magnitude_prune_keeps_the_largest_entries_of_each_vector():
    stack = torch.tensor([[0.1, -3.0, 2.0, 0.2], [5.0, 0.0, -0.3, 1.0]])
    assert torch.equal(magnitude_prune(stack, 0.5), torch.tensor([[0.0, -3.0, 2.0, 0.0], [5.0, 0.0, 0.0, 1.0]]))
    assert torch.equal(magnitude_prune(stack, 1.0), stack)


def test_ties_by_hand():
    # trimmed to 2 of 3 entries each: [3, -2, 0], [-1, 0, 4], [2, 0, -5]
    stack = torch.tensor([[3.0, -2.0, 0.5], [-1.0, 0.1, 4.0], [2.0, 0.2, -5.0]])
    kept = magnitude_prune(stack, 2 / 3)
    assert torch.equal(kept, torch.tensor([[3.0, -2.0, 0.0], [-1.0, 0.0, 4.0], [2.0, 0.0, -5.0]]))
    assert torch.equal(sign_elect(kept), torch.tensor([1.0, -1.0, -1.0]))
    # entry 0: mean of 3 and 2 (the -1 disagrees); entry 1: -2 alone; entry 2: -5 alone
    assert torch.equal(ties(stack, density=2 / 3), torch.tensor([2.5, -2.0, -5.0]))


def test_ties_with_weights_by_hand():
    # as above, sign elected on the unweighted kept values: [+, −, −]; then Σ w·x over agreeing / their count
    stack = torch.tensor([[3.0, -2.0, 0.5], [-1.0, 0.1, 4.0], [2.0, 0.2, -5.0]])
    merged = ties(stack, density=2 / 3, weights=[1.0, 2.0, 0.5])
    # entry 0: (1·3 + 0.5·2) / 2, not mergekit's (1·3 + 0.5·2) / (1 + 0.5), which divides by the agreeing weights;
    # entry 2: 4 − 5 elects −, where mergekit's election on weighted values (2·4 − 0.5·5) would elect +
    assert torch.equal(merged, torch.tensor([2.0, -2.0, -2.5]))


def test_majority_sign_by_frequency_counts_signs_not_values():
    stack = torch.tensor([[5.0, 1.0], [-1.0, -1.0], [-1.0, 2.0]])
    assert torch.equal(sign_elect(stack, "total"), torch.tensor([1.0, 1.0]))  # sums 3, 2
    assert torch.equal(sign_elect(stack, "frequency"), torch.tensor([-1.0, 1.0]))  # sign sums −1, +1
    assert torch.equal(ties(stack, density=1.0), torch.tensor([5.0, 1.5]))
    assert torch.equal(ties(stack, density=1.0, majority_sign_method="frequency"), torch.tensor([-1.0, 1.5]))
    assert torch.equal(sign_elect(torch.tensor([[2.0], [-1.0]]), "frequency"), torch.tensor([0.0]))  # a tie: 0


def test_kept_count_is_floored_as_in_mergekit_and_peft_but_never_zero():
    row = torch.tensor([[4.0, -3.0, 2.0, 1.0]])
    # 0.7 · 4 = 2.8: round would keep 3 entries, the floor keeps 2
    assert torch.equal(magnitude_prune(row, 0.7), torch.tensor([[4.0, -3.0, 0.0, 0.0]]))
    # 0.1 · 4 = 0.4: mergekit refuses and PEFT keeps nothing; taskarith keeps the largest entry
    assert torch.equal(magnitude_prune(row, 0.1), torch.tensor([[4.0, 0.0, 0.0, 0.0]]))


def test_disjoint_mean_of_agreeing_vectors_is_the_mean():
    stack = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(disjoint_mean(stack, sign_elect(stack)), torch.tensor([2.0, 3.0]))


def test_dare_drops_the_rest_and_is_unbiased():
    stack = torch.ones(1, 200_000)
    dropped = random_prune(stack, 0.25, torch.Generator().manual_seed(0))
    kept = dropped != 0
    assert set(dropped.unique().tolist()) == {0.0, 4.0}
    assert kept.float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.02)
    same = dare(stack, density=0.25, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same, dropped.sum(0))


def test_merge_vectors_by_name_with_metadata():
    a = vec("a", w=[[1.0, -1.0]], b=[0.5])
    b = vec("b", b=[0.25], w=[[3.0, 1.0]])  # another storage order
    merged = merge_vectors([a, b], "task_arithmetic")
    assert torch.equal(merged.tensors["w"], torch.tensor([[4.0, 0.0]]))
    assert torch.equal(merged.tensors["b"], torch.tensor([0.75]))
    assert merged.meta["task"] == "task_arithmetic(a+b)" and merged.meta["merge"]["tasks"] == ["a", "b"]
    assert merged.meta["base_hash"] == "h" and not merged.linear
    first, again = (merge_vectors([a, b], "dare", density=0.5, seed=3) for _ in range(2))
    assert all(torch.equal(first.tensors[n], again.tensors[n]) for n in "wb")  # seeded
    assert merge_vectors([b, a], "dare", density=0.5, seed=3).meta["task"] == "dare(b+a)"


@pytest.mark.parametrize("args, message", [
    (("nope",), "unknown merge method 'nope'"),
    (("ties", 0.0), r"density must lie in \(0, 1\], got 0.0"),
    (("ties", 1.5), "got 1.5"),
])
def test_bad_merge_arguments(args, message):
    a, b = vec("a", w=[1.0]), vec("b", w=[2.0])
    rule, *density = args
    with pytest.raises(TaskarithError, match=message):
        merge_vectors([a, b], rule, **({"density": density[0]} if density else {}))


def test_merging_vectors_of_other_bases_is_refused():
    other = TaskVector({"w": torch.tensor([1.0])}, {**META, "base_hash": "other", "task": "b"})
    with pytest.raises(TaskarithError, match="different bases"):
        merge_vectors([vec("a", w=[1.0]), other], "ties")


def test_vector_merge_command(tmp_path):
    from typer.testing import CliRunner

    from taskarith.cli.app import app

    paths = []
    for task, values in (("a", [1.0, -2.0, 0.1]), ("b", [3.0, 1.0, -0.2])):
        paths.append(tmp_path / f"{task}.safetensors")
        vec(task, w=values).save(paths[-1])
    out = tmp_path / "merged.safetensors"
    result = CliRunner().invoke(app, ["vector", "merge", *map(str, paths), "--method", "ties", "--density", "0.67",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    merged = TaskVector.load(out)
    assert torch.equal(merged.tensors["w"], ties(torch.tensor([[1.0, -2.0, 0.1], [3.0, 1.0, -0.2]]), density=0.67))
    result = CliRunner().invoke(app, ["vector", "merge", *map(str, paths), "--method", "bogus", "--out", str(out)])
    assert result.exit_code == 2 and "unknown merge method 'bogus'" in result.output


def test_run_reports_every_merge_rule(tiny_model_dir, csv_tasks, tmp_path):
    from taskarith.report import load_results, write_report
    from taskarith.run import run_experiment

    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"merges": ["ties", "dare"], "negation": False})
    results = load_results(run_experiment(cfg, tmp_path, progress=False, log=lambda *_: None))
    for entry in results["paradigms"].values():
        seed = entry["seeds"]["0"]
        assert set(seed["merges"]) == {"ties", "dare"}
        for rule, merged in seed["merges"].items():
            assert merged["alpha"] in MERGE_METHODS[rule].alphas and 0 <= merged["absolute"] <= 1
            assert list(merged["curve"]) == [f"{a:g}" for a in MERGE_METHODS[rule].alphas]  # the method's own grid
            assert entry["summary"]["merges"][rule]["absolute"]["mean"] == merged["absolute"]
    report = write_report(tmp_path).read_text()
    assert "## Merge rules" in report
    rows = {line.split(" | ")[0].strip("| "): line for line in report.splitlines() if line.startswith("| ")}
    assert {"Task arithmetic", "TIES", "DARE"} <= set(rows)
    assert rows["TIES"].count("(α ") == len(results["paradigms"])  # one cell per paradigm


TRAINED = {**META, "preset": "full", "training": {"seconds": 9.0}, "train_config": {"seed": 0},
           "selection": {"count": 2}, "taskarith_version": "0", "schema": 1}


def test_a_merge_records_its_method_and_inputs_and_no_training_record(tmp_path):
    a = TaskVector({"w": torch.tensor([1.0, -2.0, 0.5]), "b": torch.tensor([0.25])}, {**TRAINED, "task": "a"})
    b = TaskVector({"b": torch.tensor([1.0]), "w": torch.tensor([3.0, 1.0, -4.0])}, {**TRAINED, "task": "b"})
    merged = merge_vectors([a, b], "ties", density=0.5, seed=7, weights=[1, 0.5])
    merged.save(tmp_path / "m.safetensors")
    meta = TaskVector.load(tmp_path / "m.safetensors").meta
    assert not {"training", "train_config", "selection"} & set(meta)
    assert {k: meta[k] for k in ("base_hash", "base_model", "paradigm", "preset")} == {
        "base_hash": "h", "base_model": "m", "paradigm": "nonlinear", "preset": "full"}
    assert meta["merge"]["method"] == "ties" and meta["merge"]["tasks"] == ["a", "b"]
    # the settings TIES reads; DARE's seed is not one of them
    assert meta["merge"]["params"] == {"density": 0.5, "weights": [1.0, 0.5], "majority_sign_method": "total"}
    assert meta["merge"]["inputs"] == [{"task": "a", "sha256": tensors_sha256(a.tensors)},
                                       {"task": "b", "sha256": tensors_sha256(b.tensors)}]
    dare_params = merge_vectors([a, b], "dare", density=0.5, seed=7).meta["merge"]["params"]
    assert dare_params == {"density": 0.5, "seed": 7, "weights": None}


def test_the_input_hash_is_over_tensors_in_name_order():
    w, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0])
    assert tensors_sha256({"w": w, "b": b}) == tensors_sha256({"b": b, "w": w})
    assert tensors_sha256({"w": w, "b": b}) != tensors_sha256({"w": w, "b": b + 1})
    assert tensors_sha256({"w": w}) != tensors_sha256({"w": w.double()})  # the dtype is hashed too
    assert len(tensors_sha256({"w": w})) == 64


@pytest.mark.parametrize("rule, settings, message", [
    ("ties", {"weights": [1.0]}, "weights: 1 given for 2 task vectors; give one per vector"),
    ("task_arithmetic", {"weights": [1.0, float("nan")]}, "merge weights must be finite numbers"),
    ("tsv_m", {"weights": [1.0, 2.0]}, "tsv_m takes no per-vector weights"),
    ("dare", {"majority_sign_method": "frequency"}, "merge: majority_sign_method = 'frequency' is not a setting of "
                                                     "dare (its settings: density); it is a setting of ties, dare_ties"),
    ("ties", {"majority_sign_method": "median"}, "merge: majority_sign_method must be one of total, frequency, got "
                                                  "'median'"),
])
def test_bad_merge_settings(rule, settings, message):
    with pytest.raises(TaskarithError, match=re.escape(message)):
        merge_vectors([vec("a", w=[1.0]), vec("b", w=[2.0])], rule, **settings)


def test_vectors_of_different_paradigms_are_not_merged():
    other = TaskVector({"w": torch.tensor([1.0])}, {**META, "paradigm": "attention", "task": "b"})
    with pytest.raises(TaskarithError, match=r"different paradigms \(attention, nonlinear\)"):
        merge_vectors([vec("a", w=[1.0]), other], "task_arithmetic")


def _saved_pair(tmp_path) -> list[str]:
    paths = []
    for task, values in (("a", [1.0, -2.0, 0.1]), ("b", [3.0, 1.0, -0.2])):
        paths.append(str(tmp_path / f"{task}.safetensors"))
        vec(task, w=values).save(paths[-1])
    return paths


def test_vector_merge_takes_a_method_weights_and_any_setting(tmp_path):
    from typer.testing import CliRunner

    from taskarith.cli.app import app

    out = tmp_path / "m.safetensors"
    args = ["vector", "merge", *_saved_pair(tmp_path), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--method", "task_arithmetic", "--weights", "1,0.5"])
    assert result.exit_code == 0, result.output
    assert torch.equal(TaskVector.load(out).tensors["w"], torch.tensor([2.5, -1.5, 0.0]))
    result = CliRunner().invoke(app, [*args, "--method", "ties", "--density", "1", "--setting",
                                      "majority_sign_method=frequency"])
    assert result.exit_code == 0, result.output
    assert TaskVector.load(out).meta["merge"]["params"] == {"density": 1.0, "majority_sign_method": "frequency",
                                                            "weights": None}
    result = CliRunner().invoke(app, [*args, "--method", "iso_cts", "--setting", "common_share=0.5"])
    assert result.exit_code == 0, result.output
    assert TaskVector.load(out).meta["merge"]["params"] == {"common_share": 0.5}


@pytest.mark.parametrize("extra, message", [
    (["--method", "ties", "--weights", "1,2,3"], "error: weights: 3 given for 2 task vectors; give one per vector"),
    (["--method", "ties", "--weights", "1,x"], "error: --weights takes comma-separated numbers, e.g. 1,0.5; "
                                               "got '1,x'"),
    (["--method", "adamerging"], "error: adamerging needs unlabeled test inputs (transductive), so it cannot "
                                 "merge from task vectors alone"),
    (["--method", "fisher"], "error: fisher needs training data, so it cannot merge from task vectors alone"),
    (["--method", "task_arithmetic", "--density", "0.5"], "error: vector merge: density = 0.5 is not a setting of "
                                                         "task_arithmetic (its settings: none); it is a setting of "
                                                         "ties, dare, dare_ties"),
    (["--method", "iso_cts", "--setting", "common_share=2"], "error: vector merge: common_share must lie in [0, 1], "
                                                             "got 2.0"),
    (["--method", "ties", "--setting", "density"], "error: --setting 'density': expected NAME=VALUE, e.g. "
                                                   "density=0.2"),
    (["--method", "ties", "--setting", "density=0.1", "--density", "0.2"],
     "error: --density and --setting density=... are one setting; give it once"),
    (["--method", "ties", "--setting", "density=[1"], "error: --setting 'density=[1': the value is not valid YAML "
                                                      "(while parsing a flow sequence)"),
])
def test_vector_merge_refuses_in_one_line(tmp_path, extra, message):
    from typer.testing import CliRunner

    from taskarith.cli.app import app

    result = CliRunner().invoke(app, ["vector", "merge", *_saved_pair(tmp_path), *extra, "--out",
                                      str(tmp_path / "m.safetensors")])
    assert result.exit_code == 2 and result.stderr.splitlines() == [message], result.output
    assert not (tmp_path / "m.safetensors").exists()
