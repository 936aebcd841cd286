"""Weight disentanglement (the paper's Eq. 2, Figures 6 and 8).

    ξ(α1, α2) = Σ_{t∈{1,2}} E_{x∈D_t} dist(f(x; θ0 + α_t τ_t), f(x; θ0 + α1 τ1 + α2 τ2))

over a grid of (α1, α2), with two distances:

- "representation": KL(p_single ‖ p_joint) between softmax distributions over the representation's
  dimensions, averaged over examples;
- "prediction": whether the argmax of task t's head disagrees between the two models (a rate).

Both go through `evaluate.sweep`, so linear vectors take the affine path (one JVP per vector and batch,
whatever the grid) and non-linear ones are applied in place once per grid point.

Low-error area: the share of grid cells with ξ at most a threshold. Thresholds are chosen once per pair
and measure, so paradigms compare on the same footing: for "representation" a fixed fraction
(REPRESENTATION_FRACTION) of the largest ξ any paradigm of the pair reaches, since KL has no natural
scale; for "prediction" a fixed disagreement rate (PREDICTION_THRESHOLD) summed over both tasks.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..data import Split
from ..evaluate import EvalSet, make_evalset, sweep
from ..models.base import Model
from ..vectors import TaskVector

MEASURES = ("representation", "prediction")
REPRESENTATION_FRACTION = 0.1
PREDICTION_THRESHOLD = 0.1
SAMPLE_SEED = 0  # the evaluation subset is the same for every paradigm, seed and rerun


def alpha_grid(points: int, span: float) -> list[float]:
    """`points` evenly spaced values on [−span, span]; written as span·(2i − n)/n so that the grid is exactly
    symmetric and, for an odd count, holds 0 exactly (np.linspace can miss it by an ulp)."""
    n = points - 1
    return [span * (2 * i - n) / n for i in range(points)]


def kl_rows(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per row from log-probabilities; exactly 0 where the rows are equal."""
    return (logp.exp() * (logp - logq)).sum(-1)


def disentanglement_error(model: Model, vectors: Sequence[TaskVector], evalsets: Sequence[EvalSet],
                          heads: Sequence[torch.Tensor], grid: Sequence[float]) -> dict[str, np.ndarray]:
    """ξ[i1, i2] at (grid[i1], grid[i2]) for both measures; vectors, evalsets and heads are (task 1, task 2).

    Each task t contributes E_{x∈D_t} of both distances between f(θ0 + α_t τ_t) and f(θ0 + α1 τ1 + α2 τ2)."""
    n = len(grid)
    singles: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}  # (t, grid index, batch)
    for t in (0, 1):
        def keep(i: int, s: int, b: int, rep: torch.Tensor, t: int = t) -> None:
            singles[t, i, b] = (torch.log_softmax(rep.double(), -1), model.logits(rep, heads[t]).argmax(-1))

        sweep(model, vectors, [[a, 0.0] if t == 0 else [0.0, a] for a in grid], [evalsets[t]], keep)

    kl, disagree = np.zeros((2, n * n)), np.zeros((2, n * n))

    def compare(c: int, t: int, b: int, rep: torch.Tensor) -> None:
        i = divmod(c, n)[t]  # the grid index of α_t in combination c = i1·n + i2
        logp, pred = singles[t, i, b]
        kl[t, c] += kl_rows(logp, torch.log_softmax(rep.double(), -1)).sum().item()
        disagree[t, c] += (model.logits(rep, heads[t]).argmax(-1) != pred).sum().item()

    # both tasks' sets under one application of each of the n² combinations
    sweep(model, vectors, [[a1, a2] for a1 in grid for a2 in grid], evalsets, compare)
    out = {m: np.zeros((n, n)) for m in MEASURES}
    for t in (0, 1):
        size = max(evalsets[t].size, 1)
        out["representation"] += kl[t].reshape(n, n) / size
        out["prediction"] += disagree[t].reshape(n, n) / size
    return out


def thresholds(errors: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, float]:
    """One threshold per measure for all paradigms of a pair (see the module docstring)."""
    largest = max(float(e["representation"].max()) for e in errors.values())
    return {"representation": REPRESENTATION_FRACTION * largest, "prediction": PREDICTION_THRESHOLD}


def low_area(xi: np.ndarray, threshold: float) -> float:
    """Share of grid cells with ξ at most the threshold."""
    return float((xi <= threshold).mean())


def sample_evalset(model: Model, split: Split, points: int, batch_size: int) -> EvalSet:
    """A seeded random subset of up to `points` examples of a split."""
    rng = np.random.default_rng(SAMPLE_SEED)
    k = min(points, len(split.inputs))
    idx = sorted(rng.choice(len(split.inputs), size=k, replace=False).tolist())
    return make_evalset(model, [split.inputs[i] for i in idx], [split.labels[i] for i in idx], batch_size)


def pair_key(pair: Sequence[str]) -> str:
    return f"{pair[0]}+{pair[1]}"


def disentangle(model: Model, vectors: Mapping[str, Sequence[TaskVector]], pair: tuple[str, str],
                evalsets: Sequence[EvalSet], heads: Sequence[torch.Tensor], *, grid_points: int, span: float,
                log: Callable[[str], None] = print) -> dict:
    """ξ over the grid for each paradigm's vectors of a pair of tasks; `vectors[paradigm]`, `evalsets` and
    `heads` are in the pair's order."""
    grid = alpha_grid(grid_points, span)
    sizes = {t: e.size for t, e in zip(pair, evalsets)}
    errors = {}
    for paradigm, pair_vectors in vectors.items():
        log(f"disentanglement {pair_key(pair)}: {paradigm}, {grid_points}×{grid_points} grid on "
            f"[-{span:g}, {span:g}], {' + '.join(str(n) for n in sizes.values())} examples")
        errors[paradigm] = disentanglement_error(model, pair_vectors, evalsets, heads, grid)
    limits = thresholds(errors)
    recorded = {**limits, "representation_fraction_of_max": REPRESENTATION_FRACTION}
    out: dict = {"grid": grid}
    for paradigm, e in errors.items():
        out[paradigm] = {
            **{m: e[m].tolist() for m in MEASURES},
            "low_area": {m: low_area(e[m], limits[m]) for m in MEASURES},
            "threshold": recorded,
            "points": sizes,
        }
    return out
