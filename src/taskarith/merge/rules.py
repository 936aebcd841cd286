"""Merge rules over one parameter's stacked task vectors [T, ...] -> the merged vector [...], as pure functions.

- task arithmetic (Ilharco et al.): the sum.
- TIES (Yadav et al.): keep each vector's top-`density` entries by magnitude, elect each entry's sign by the
  sign of the summed kept values, and average the kept values that agree with it.
- DARE (Yu et al.): drop entries at random with probability 1 − `density` and rescale the survivors by
  1/`density`, so each vector is unchanged in expectation; then sum (or TIES-merge with `dare_ties`).
"""

from __future__ import annotations

import torch


def magnitude_prune(stack: torch.Tensor, density: float) -> torch.Tensor:
    """Zero all but the `density` share of largest-magnitude entries of each vector in the stack."""
    flat = stack.reshape(len(stack), -1)
    k = max(1, round(density * flat.shape[1]))
    if k >= flat.shape[1]:
        return stack.clone()
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep.scatter_(1, flat.abs().topk(k, dim=1).indices, True)
    return (flat * keep).reshape(stack.shape)


def random_prune(stack: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """Keep each entry with probability `density` and rescale it by 1/density (DARE's drop and rescale)."""
    keep = torch.rand(stack.shape, generator=generator, dtype=torch.float32) < density
    return stack * keep.to(stack.dtype) / density


def sign_elect(stack: torch.Tensor) -> torch.Tensor:
    """The sign of the summed values, entry by entry (TIES's 'total' rule); 0 where they cancel."""
    return torch.sign(stack.sum(dim=0))


def disjoint_mean(stack: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Mean over the vectors whose entry is non-zero and agrees with the elected sign; 0 where none does."""
    agree = (torch.sign(stack) == sign) & (stack != 0)
    total = (stack * agree).sum(dim=0)
    return total / agree.sum(dim=0).clamp(min=1)


def task_arithmetic(stack: torch.Tensor, **_) -> torch.Tensor:
    return stack.sum(dim=0)


def ties(stack: torch.Tensor, *, density: float, **_) -> torch.Tensor:
    kept = magnitude_prune(stack, density)
    return disjoint_mean(kept, sign_elect(kept))


def dare(stack: torch.Tensor, *, density: float, generator: torch.Generator, **_) -> torch.Tensor:
    return random_prune(stack, density, generator).sum(dim=0)


def dare_ties(stack: torch.Tensor, *, density: float, generator: torch.Generator, **_) -> torch.Tensor:
    kept = random_prune(stack, density, generator)
    return disjoint_mean(kept, sign_elect(kept))
