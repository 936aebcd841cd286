"""The merge methods: the one registry that the run, the CLI and the report read, and `merge_vectors`.

The merged vector is a task vector like any other: θ0 + α·τ_merged, with one α chosen on validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import TaskarithError
from ..vectors import TaskVector, check_compatible
from .rules import dare, dare_ties, task_arithmetic, ties


@dataclass(frozen=True)
class MergeMethod:
    name: str
    label: str  # how tables name it
    rule: Callable[..., torch.Tensor]  # stacked [T, ...] -> merged [...]; takes density= and generator=


MERGE_METHODS: dict[str, MergeMethod] = {m.name: m for m in (
    MergeMethod("task_arithmetic", "Task arithmetic", task_arithmetic),
    MergeMethod("ties", "TIES", ties),
    MergeMethod("dare", "DARE", dare),
    MergeMethod("dare_ties", "DARE + TIES", dare_ties),
)}
BASELINE = "task_arithmetic"  # the plain sum every run scores; `eval.merges` names the others


def merge_method(name: str) -> MergeMethod:
    if name not in MERGE_METHODS:
        raise TaskarithError(f"unknown merge rule {name!r}; known: {', '.join(MERGE_METHODS)}")
    return MERGE_METHODS[name]


def merge_vectors(vectors: Sequence[TaskVector], rule: str, *, density: float = 0.2, seed: int = 0) -> TaskVector:
    """Merge task vectors of one base and paradigm parameter by parameter; the result keeps their metadata."""
    method = merge_method(rule)
    if not 0 < density <= 1:
        raise TaskarithError(f"merge density must lie in (0, 1], got {density}")
    if not 0 <= seed < 2**63:  # torch's generators take a 64-bit seed
        raise TaskarithError(f"merge seed must lie in [0, 2**63), got {seed}")
    if not vectors:
        raise TaskarithError("nothing to merge: no task vectors given")
    check_compatible(vectors)
    first = vectors[0]
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name in sorted(first.tensors):  # sorted: DARE's random draws do not depend on storage order
        stack = torch.stack([tv.tensors[name] for tv in vectors])
        tensors[name] = method.rule(stack, density=density, generator=generator).to(stack.dtype)
    if not any(bool(t.any()) for t in tensors.values()):
        # τ and −τ summed, or signs that cancel everywhere: applying it would silently be θ0
        raise TaskarithError(f"the {rule} merge of {len(vectors)} task vectors is zero everywhere; nothing to apply")
    meta = dict(first.meta)
    meta["task"] = f"{rule}(" + "+".join(str(tv.meta.get("task")) for tv in vectors) + ")"
    meta["merge"] = {"rule": rule, "density": density, "seed": seed,
                     "tasks": [tv.meta.get("task") for tv in vectors]}
    return TaskVector(tensors, meta)
