"""Merge rules over one parameter's stacked task vectors [T, ...] -> the merged vector [...].

The merged vector is a task vector like any other: θ0 + α·τ_merged, with one α chosen on validation.
- task arithmetic (Ilharco et al.): the sum.
- TIES (Yadav et al.): keep each vector's top-`density` entries by magnitude, elect each entry's sign by the
  sign of the summed kept values, and average the kept values that agree with it.
- DARE (Yu et al.): drop entries at random with probability 1 − `density` and rescale the survivors by
  1/`density`, so each vector is unchanged in expectation; then sum (or TIES-merge with `dare_ties`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..errors import TaskarithError
from ..vectors import TaskVector, check_compatible


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


MERGE_RULES: dict[str, Callable[..., torch.Tensor]] = {
    "task_arithmetic": task_arithmetic, "ties": ties, "dare": dare, "dare_ties": dare_ties}


def merge_vectors(vectors: Sequence[TaskVector], rule: str, *, density: float = 0.2, seed: int = 0) -> TaskVector:
    """Merge task vectors of one base and paradigm parameter by parameter; the result keeps their metadata."""
    if rule not in MERGE_RULES:
        raise TaskarithError(f"unknown merge rule {rule!r}; known: {', '.join(MERGE_RULES)}")
    if not 0 < density <= 1:
        raise TaskarithError(f"merge density must lie in (0, 1], got {density}")
    if not 0 <= seed < 2**63:  # torch's generators take a 64-bit seed
        raise TaskarithError(f"merge seed must lie in [0, 2**63), got {seed}")
    if not vectors:
        raise TaskarithError("nothing to merge: no task vectors given")
    check_compatible(vectors)
    first = vectors[0]
    generator = torch.Generator().manual_seed(seed)
    fn = MERGE_RULES[rule]
    tensors = {}
    for name in sorted(first.tensors):  # sorted: DARE's random draws do not depend on storage order
        stack = torch.stack([tv.tensors[name] for tv in vectors])
        tensors[name] = fn(stack, density=density, generator=generator).to(stack.dtype)
    if not any(bool(t.any()) for t in tensors.values()):
        # τ and −τ summed, or signs that cancel everywhere: applying it would silently be θ0
        raise TaskarithError(f"the {rule} merge of {len(vectors)} task vectors is zero everywhere; nothing to apply")
    meta = dict(first.meta)
    meta["task"] = f"{rule}(" + "+".join(str(tv.meta.get("task")) for tv in vectors) + ")"
    meta["merge"] = {"rule": rule, "density": density, "seed": seed,
                     "tasks": [tv.meta.get("task") for tv in vectors]}
    return TaskVector(tensors, meta)
