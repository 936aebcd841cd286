"""The merge registry's invariants, `taskarith methods`, and TIES and DARE against an independent
re-implementation of PEFT's merge_utils (src/peft/utils/merge_utils.py), with taskarith's differences named:

- sign ties: PEFT elects + where the election sums to 0 (`where(x >= 0, 1, -1)`); taskarith elects 0, so the
  entry merges to 0. Only 'frequency' hits it on continuous values (two vectors of opposite sign).
- kept count: both floor density · n; where that is 0 PEFT keeps nothing, taskarith keeps one entry.
- DARE's mask: PEFT draws torch.bernoulli from the global generator, per tensor; taskarith draws
  rand < density from a seeded generator over the whole [T, ...] stack, so the tests hand PEFT that mask.
"""

from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.config import MergeDataConfig
from taskarith.merging import BASELINE, MERGE_METHODS, NEEDS
from taskarith.merging.merge import loaded, merge_vectors
from taskarith.merging.rules import dare, dare_ties, ties
from taskarith.paradigms import PARADIGMS
from taskarith.vectors import TaskVector

# --- PEFT's semantics, written out again -------------------------------------------------------------------


def peft_magnitude_prune(tensor: torch.Tensor, density: float) -> torch.Tensor:
    if density >= 1:
        return tensor
    mask = torch.zeros_like(tensor).reshape(-1)
    mask[torch.topk(tensor.abs().reshape(-1), k=int(density * tensor.numel())).indices] = 1
    return tensor * mask.reshape(tensor.shape)


def peft_sign_mask(stacked: torch.Tensor, method: str) -> torch.Tensor:
    sign = stacked.sign()
    magnitude = stacked.sum(dim=0) if method == "total" else sign.sum(dim=0)
    return sign == torch.where(magnitude >= 0, 1, -1)


def peft_disjoint_merge(stacked: torch.Tensor, weights: torch.Tensor, method: str) -> torch.Tensor:
    mask = peft_sign_mask(stacked, method)  # elected before weighting
    weighted = stacked * weights.view(-1, *[1] * (stacked.dim() - 1))
    return (weighted * mask).sum(dim=0) / torch.clamp(mask.sum(dim=0), min=1.0)


def peft_ties(tensors, weights, density, method="total"):
    return peft_disjoint_merge(torch.stack([peft_magnitude_prune(t, density) for t in tensors]), weights, method)


def peft_random_prune(tensor: torch.Tensor, density: float, mask: torch.Tensor) -> torch.Tensor:
    return tensor * mask / density  # PEFT's rescaled random pruning, with the mask handed in


def peft_dare_linear(tensors, weights, density, masks):
    pruned = torch.stack([peft_random_prune(t, density, m) for t, m in zip(tensors, masks)])
    return (pruned * weights.view(-1, *[1] * (pruned.dim() - 1))).sum(dim=0)


def peft_dare_ties(tensors, weights, density, masks, method="total"):
    pruned = torch.stack([peft_random_prune(t, density, m) for t, m in zip(tensors, masks)])
    return peft_disjoint_merge(pruned, weights, method)


def taskarith_mask(shape, density: float, seed: int) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density).float()


CASES = [(tasks, shape, density) for tasks, shape in ((2, (40,)), (3, (6, 7)), (5, (3, 4, 5)))
         for density in (0.2, 0.5, 0.9, 1.0)]


def random_case(tasks: int, shape: tuple, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((tasks, *shape), generator=g, dtype=torch.float64), torch.rand(tasks, generator=g) + 0.2


@pytest.mark.parametrize("tasks, shape, density", CASES)
def test_ties_matches_peft_by_total(tasks, shape, density):
    stack, weights = random_case(tasks, shape)
    expected = peft_ties(list(stack), weights.double(), density)
    assert torch.allclose(ties(stack, density=density, weights=weights.tolist()), expected)


@pytest.mark.parametrize("tasks, shape, density", CASES)
def test_ties_matches_peft_by_frequency_except_at_tied_elections(tasks, shape, density):
    stack, weights = random_case(tasks, shape, seed=1)
    ours = ties(stack, density=density, weights=weights.tolist(), majority_sign_method="frequency")
    theirs = peft_ties(list(stack), weights.double(), density, "frequency")
    kept = torch.stack([peft_magnitude_prune(t, density) for t in stack])
    tied = kept.sign().sum(dim=0) == 0
    assert torch.allclose(ours[~tied], theirs[~tied])
    assert torch.all(ours[tied] == 0)  # taskarith: a tied election merges to 0; PEFT takes the + side
    if tasks == 2 and density == 1.0:
        assert tied.any() and (theirs[tied] != 0).any()


@pytest.mark.parametrize("tasks, shape, density", CASES)
@pytest.mark.parametrize("method", ["total", "frequency"])
def test_dare_matches_peft_given_the_same_mask(tasks, shape, density, method):
    stack, weights = random_case(tasks, shape, seed=2)
    masks = taskarith_mask(stack.shape, density, seed=5).double()
    expected = peft_dare_linear(list(stack), weights.double(), density, masks)
    got = dare(stack, density=density, generator=torch.Generator().manual_seed(5), weights=weights.tolist())
    assert torch.allclose(got, expected)
    ours = dare_ties(stack, density=density, generator=torch.Generator().manual_seed(5), weights=weights.tolist(),
                     majority_sign_method=method)
    theirs = peft_dare_ties(list(stack), weights.double(), density, masks, method)
    untied = (masks * stack).sign().sum(dim=0) != 0 if method == "frequency" else torch.ones_like(ours, dtype=bool)
    assert torch.allclose(ours[untied], theirs[untied])


def test_where_peft_would_keep_nothing_taskarith_keeps_the_largest_entry():
    stack = torch.tensor([[0.5, -3.0, 1.0], [2.0, 0.1, -0.2]])
    assert torch.equal(peft_ties(list(stack), torch.ones(2), 0.2), torch.zeros(3))  # ⌊0.2 · 3⌋ = 0
    assert torch.equal(ties(stack, density=0.2), torch.tensor([2.0, -3.0, 0.0]))


# --- the registry ----------------------------------------------------------------------------------------

DATA_SETTINGS = set(MergeDataConfig.model_fields)
DATA_FREE = [name for name, m in MERGE_METHODS.items() if m.needs == "vectors"]


@pytest.mark.parametrize("method", MERGE_METHODS.values(), ids=list(MERGE_METHODS))
def test_every_record_is_complete(method):
    authors = r"( et al\.| & [A-Z][a-z]+)"
    assert method.label.strip() and re.search(authors + r", [A-Za-z]+ 20\d\d$", method.reference), method.reference
    assert method.needs in NEEDS and method.needs in ("vectors", "train", "test-inputs")
    assert method.paradigms and set(method.paradigms) <= set(PARADIGMS)
    assert list(method.alphas) == sorted(set(method.alphas)) and all(0 <= a <= 4 for a in method.alphas)
    assert 1 <= len(method.alphas) <= 13 and method.scale in method.alphas
    assert callable(loaded(method.rule)) and set(method.settings).isdisjoint(DATA_SETTINGS)
    # a method reads data exactly when it measures something on it
    assert (method.measure is not None) == (method.needs != "vectors")
    assert method.measure is None or callable(loaded(method.measure))


def test_the_registry_holds_the_compared_methods():
    assert set(MERGE_METHODS) == {"weight_averaging", "task_arithmetic", "ties", "dare", "dare_ties", "tsv_m", "iso_c",
                                  "iso_cts", "fisher", "regmean", "adamerging"}
    assert [MERGE_METHODS[m].needs for m in ("fisher", "regmean", "adamerging")] == ["train", "train", "test-inputs"]
    assert "linear" not in MERGE_METHODS["fisher"].paradigms + MERGE_METHODS["regmean"].paradigms
    assert BASELINE in MERGE_METHODS
    assert {1.5, 2.5} <= set(MERGE_METHODS["ties"].alphas)  # the demo's best TIES α per paradigm


@pytest.mark.parametrize("name", DATA_FREE)
def test_every_data_free_method_merges_vectors(name):
    g = torch.Generator().manual_seed(0)
    meta = {"base_hash": "h", "base_model": "m", "paradigm": "nonlinear"}
    vectors = [TaskVector({"w": torch.randn(4, 3, generator=g), "b": torch.randn(4, generator=g)}, {**meta, "task": t})
               for t in "abc"]
    merged = merge_vectors(vectors, name)
    assert {n: t.shape for n, t in merged.tensors.items()} == {"w": (4, 3), "b": (4,)}
    assert merged.meta["merge"]["method"] == name and merged.meta["task"] == f"{name}(a+b+c)"


def test_methods_lists_every_method_within_100_columns():
    result = CliRunner().invoke(app, ["methods"], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert "ties: TIES (Yadav et al., NeurIPS 2023)" in lines
    heads = [line.split(":")[0] for line in lines if not line.startswith(" ")]
    assert heads == list(MERGE_METHODS)
    assert "  default α grid (canonical 1): 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3" in lines
    assert lines.count("  needs: task vectors only (data-free)") == len(DATA_FREE)
    assert "  needs: unlabeled test inputs (transductive)" in lines and "  needs: training data" in lines
