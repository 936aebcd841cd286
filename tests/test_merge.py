"""Merge rules: hand-computed values on small tensors, their invariants, the CLI and the run's merge table."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from taskarith.errors import TaskarithError
from taskarith.merge import dare, magnitude_prune, merge_vectors, random_prune, sign_elect, task_arithmetic, ties
from taskarith.merge.rules import disjoint_mean
from taskarith.vectors import TaskVector

META = {"base_hash": "h", "base_model": "m", "paradigm": "nonlinear"}


def vec(task: str, **tensors) -> TaskVector:
    return TaskVector({n: torch.tensor(v, dtype=torch.float32) for n, v in tensors.items()}, {**META, "task": task})


def test_task_arithmetic_is_the_sum():
    stack = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    assert torch.equal(task_arithmetic(stack), torch.tensor([4.0, -1.5]))


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
    (("nope",), "unknown merge rule 'nope'"),
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

    from taskarith.cli import app

    paths = []
    for task, values in (("a", [1.0, -2.0, 0.1]), ("b", [3.0, 1.0, -0.2])):
        paths.append(tmp_path / f"{task}.safetensors")
        vec(task, w=values).save(paths[-1])
    out = tmp_path / "merged.safetensors"
    result = CliRunner().invoke(app, ["vector", "merge", *map(str, paths), "--rule", "ties", "--density", "0.67",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    merged = TaskVector.load(out)
    assert torch.equal(merged.tensors["w"], ties(torch.tensor([[1.0, -2.0, 0.1], [3.0, 1.0, -0.2]]), density=0.67))
    result = CliRunner().invoke(app, ["vector", "merge", *map(str, paths), "--rule", "bogus", "--out", str(out)])
    assert result.exit_code == 2 and "unknown merge rule 'bogus'" in result.output


def test_run_reports_every_merge_rule(tiny_model_dir, csv_tasks, tmp_path):
    from taskarith.report import load_results, write_report
    from taskarith.run import run_experiment

    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"merges": ["ties", "dare"], "negation": False})
    results = load_results(run_experiment(cfg, tmp_path, progress=False, log=lambda *_: None))
    for entry in results["paradigms"].values():
        seed = entry["seeds"]["0"]
        assert set(seed["merges"]) == {"ties", "dare"}
        for rule, merged in seed["merges"].items():
            assert merged["alpha"] in cfg.eval.alphas and 0 <= merged["absolute"] <= 1
            assert entry["summary"]["merges"][rule]["absolute"]["mean"] == merged["absolute"]
    report = write_report(tmp_path).read_text()
    assert "## Merge rules" in report and "| Attention-only | TIES |" in report and "| Non-linear | DARE |" in report
