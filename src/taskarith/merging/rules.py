"""Merge rules over one parameter's stacked task vectors [T, ...] -> the merged vector [...], as pure functions.

With optional per-vector weights w_t (1 when not given):

- weight averaging (Wortsman et al.): Σ_t w_t τ_t / Σ_t w_t, the plain mean without weights.
- task arithmetic (Ilharco et al.): Σ_t w_t τ_t.
- TIES (Yadav et al.): keep each vector's k = max(1, ⌊density · n⌋) largest-magnitude entries, elect each
  entry's sign s from the kept values, and take Σ_t w_t τ̂_t [sign τ̂_t = s] / #{t : sign τ̂_t = s}.
- DARE (Yu et al.): drop entries at random with probability 1 − density and rescale the survivors by
  1/density, so each vector is unchanged in expectation; then Σ_t w_t τ̂_t (or TIES's election and mean).

Weights enter as in PEFT's merge_utils: the sign is elected on the unweighted kept values, and the weighted
values are averaged over the count of agreeing vectors (not over their weights).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import TaskarithError

SIGN_METHODS = ("total", "frequency")  # TIES's sign election: by the summed values, or by the summed signs


def magnitude_prune(stack: torch.Tensor, density: float) -> torch.Tensor:
    """Zero all but the k = max(1, ⌊density · n⌋) largest-magnitude entries of each n-entry vector in the stack."""
    flat = stack.reshape(len(stack), -1)
    # floor as mergekit and PEFT; they keep nothing (or fail) where it is 0, one entry is kept here
    k = max(1, math.floor(density * flat.shape[1]))
    if k >= flat.shape[1]:
        return stack.clone()
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep.scatter_(1, flat.abs().topk(k, dim=1).indices, True)
    return (flat * keep).reshape(stack.shape)


def random_prune(stack: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """Keep each entry with probability `density` and rescale it by 1/density (DARE's drop and rescale)."""
    keep = torch.rand(stack.shape, generator=generator, dtype=torch.float32) < density
    return stack * keep.to(stack.dtype) / density


def sign_elect(stack: torch.Tensor, method: str = "total") -> torch.Tensor:
    """Entry by entry, 'total': sign(Σ_t x_t); 'frequency': sign(Σ_t sign x_t). 0 where they cancel."""
    if method not in SIGN_METHODS:
        raise TaskarithError(f"majority sign method must be one of {', '.join(SIGN_METHODS)}, got {method!r}")
    return torch.sign((torch.sign(stack) if method == "frequency" else stack).sum(dim=0))


def weighted(stack: torch.Tensor, weights: Sequence[float] | None) -> torch.Tensor:
    """w_t · x_t for each vector t of the stack (the stack itself without weights)."""
    if weights is None:
        return stack
    return stack * torch.tensor(weights, dtype=stack.dtype).reshape(-1, *[1] * (stack.ndim - 1))


def disjoint_mean(stack: torch.Tensor, sign: torch.Tensor, weights: Sequence[float] | None = None) -> torch.Tensor:
    """Σ_t w_t x_t [sign x_t = s] / #{t : sign x_t = s, x_t ≠ 0}, entry by entry; 0 where no vector agrees."""
    agree = (torch.sign(stack) == sign) & (stack != 0)
    total = (weighted(stack, weights) * agree).sum(dim=0)
    return total / agree.sum(dim=0).clamp(min=1)


def weight_averaging(stack: torch.Tensor, *, weights: Sequence[float] | None = None, **_) -> torch.Tensor:
    if weights is None:
        return stack.mean(dim=0)
    if math.fsum(weights) == 0:
        raise TaskarithError("weight averaging divides by the sum of the weights, which is 0")
    return weighted(stack, weights).sum(dim=0) / math.fsum(weights)


def task_arithmetic(stack: torch.Tensor, *, weights: Sequence[float] | None = None, **_) -> torch.Tensor:
    return weighted(stack, weights).sum(dim=0)


def ties(stack: torch.Tensor, *, density: float, weights: Sequence[float] | None = None,
         majority_sign_method: str = "total", **_) -> torch.Tensor:
    kept = magnitude_prune(stack, density)
    return disjoint_mean(kept, sign_elect(kept, majority_sign_method), weights)


def dare(stack: torch.Tensor, *, density: float, generator: torch.Generator,
         weights: Sequence[float] | None = None, **_) -> torch.Tensor:
    return weighted(random_prune(stack, density, generator), weights).sum(dim=0)


def dare_ties(stack: torch.Tensor, *, density: float, generator: torch.Generator,
              weights: Sequence[float] | None = None, majority_sign_method: str = "total", **_) -> torch.Tensor:
    kept = random_prune(stack, density, generator)
    return disjoint_mean(kept, sign_elect(kept, majority_sign_method), weights)
