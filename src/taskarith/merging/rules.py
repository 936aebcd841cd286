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

Every rule takes `overwrite=True` from a caller that owns the stack (the merge loop): the rule may then use
the stack's memory for its pruned or weighted copy. At LLM scale one stack is gigabytes, and a copy of it
would double the merge's peak memory. The election and the mean run in blocks of entries for the same reason.
"""

from __future__ import annotations

import math
from typing import Sequence, get_args

import torch

from ..groundwork.errors import TaskarithError
from .kinds import Density, SignMethod

SIGN_METHODS = get_args(SignMethod)
BLOCK = 1 << 18  # entries per vector in one block of the election: its temporaries stay small
CHUNK = 1 << 20  # entries of one vector that pruning works on at once (a multiple of the generator's 16)


def _owned(stack: torch.Tensor, overwrite: bool) -> torch.Tensor:
    """The stack flattened to [T, n], as a copy unless the caller gave it up."""
    flat = stack.reshape(len(stack), -1)
    shared = flat.data_ptr() == stack.data_ptr()  # a view, not reshape's own copy
    return flat.clone() if shared and not overwrite else flat


def keep_count(entries: int, density: float) -> int:
    """How many entries magnitude pruning keeps of `entries`: ⌊density · n⌋ as mergekit and PEFT, at least 1
    (both also keep one where the floor is 0)."""
    return max(1, math.floor(density * entries))


_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}  # a float's bits as an int of its width: |x|'s order is the bits' order
DIGIT = 16  # bits of the magnitude a radix pass counts: 2 passes for float32, 1 for half precision


def _magnitude_bits(chunk: torch.Tensor) -> torch.Tensor:
    """|x| for each entry as the (non-negative) integer of its bits, which sort as the magnitudes do."""
    bits = chunk.view(_BITS[chunk.dtype])
    return bits & torch.iinfo(bits.dtype).max  # the sign bit cleared


def kth_largest_magnitude(row: torch.Tensor, k: int) -> tuple[int, int]:
    """The bits of the k-th largest |x| of a 1-D float tensor, and how many entries equal to it are among the k
    largest: a radix select, DIGIT bits per counting pass over the row in chunks, so it allocates no copy of
    the row and does not sort it (topk would hold a sorted copy of n (value, index) pairs)."""
    width = torch.iinfo(_BITS[row.dtype]).bits
    prefix, remaining = 0, k
    for shift in range(width - DIGIT, -1, -DIGIT):
        counts = torch.zeros(1 << DIGIT, dtype=torch.int64, device=row.device)
        for chunk in row.split(CHUNK):
            bits = _magnitude_bits(chunk)
            if shift + DIGIT < width:  # only the entries whose higher digits are the k-th's
                bits = bits[(bits >> (shift + DIGIT)) == (prefix >> (shift + DIGIT))]
            counts += torch.bincount(((bits >> shift) & ((1 << DIGIT) - 1)).long(), minlength=1 << DIGIT)
        above = counts.flip(0).cumsum(0)  # above[j]: entries whose digit is at least (2**DIGIT − 1 − j)
        j = int(torch.searchsorted(above, torch.tensor([remaining], device=row.device)))
        remaining -= int(above[j - 1]) if j else 0
        prefix |= ((1 << DIGIT) - 1 - j) << shift
    return prefix, remaining


def magnitude_prune(stack: torch.Tensor, density: float, *, overwrite: bool = False) -> torch.Tensor:
    """Zero all but the k = keep_count(n, density) largest-magnitude entries of each n-entry vector in the
    stack. Of entries equal to the k-th magnitude, those first in the vector are kept, so exactly k are."""
    flat = _owned(stack, overwrite)
    k = keep_count(flat.shape[1], density)
    if k < flat.shape[1]:
        for row in flat:
            threshold, ties_kept = kth_largest_magnitude(row, k)
            for chunk in row.split(CHUNK):
                bits = _magnitude_bits(chunk)
                drop = bits < threshold
                equal = (bits == threshold).nonzero().squeeze(1)
                drop[equal[ties_kept:]] = True
                ties_kept = max(0, ties_kept - len(equal))
                chunk.masked_fill_(drop, 0)
    return flat.reshape(stack.shape)


def random_prune(stack: torch.Tensor, density: float, generator: torch.Generator, *,
                 overwrite: bool = False) -> torch.Tensor:
    """Keep each entry with probability `density` and rescale it by 1/density (DARE's drop and rescale). The
    draws are float32 from the CPU generator, vector by vector in chunks (the generator's sequence is the same
    as one draw of the whole stack's shape), so they depend on neither the device nor the chunk size."""
    flat = _owned(stack, overwrite)
    for row in flat:
        for chunk in row.split(CHUNK):
            keep = torch.rand(chunk.shape, generator=generator, dtype=torch.float32) < density
            chunk.mul_(keep.to(chunk.device)).div_(density)
    return flat.reshape(stack.shape)


def sign_elect(stack: torch.Tensor, method: str = "total") -> torch.Tensor:
    """Entry by entry, 'total': sign(Σ_t x_t); 'frequency': sign(Σ_t sign x_t). 0 where they cancel."""
    if method not in SIGN_METHODS:
        raise TaskarithError(f"majority sign method must be one of {', '.join(SIGN_METHODS)}, got {method!r}")
    return torch.sign((torch.sign(stack) if method == "frequency" else stack).sum(dim=0))


def _column(weights: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(weights, dtype=like.dtype).to(like.device).reshape(-1, *[1] * (like.ndim - 1))


def weighted(stack: torch.Tensor, weights: Sequence[float] | None) -> torch.Tensor:
    """w_t · x_t for each vector t of the stack (the stack itself without weights)."""
    return stack if weights is None else stack * _column(weights, stack)


def disjoint_mean(stack: torch.Tensor, sign: torch.Tensor, weights: Sequence[float] | None = None) -> torch.Tensor:
    """Σ_t w_t x_t [sign x_t = s] / #{t : sign x_t = s, x_t ≠ 0}, entry by entry; 0 where no vector agrees."""
    agree = stack * sign > 0  # sign x_t = s ≠ 0, in one pass (s is ±1 or 0, so the product is exact)
    total = (weighted(stack, weights) * agree).sum(dim=0)
    return total / agree.sum(dim=0).clamp(min=1)


def elect_and_mean(stack: torch.Tensor, weights: Sequence[float] | None, method: str) -> torch.Tensor:
    """disjoint_mean(stack, sign_elect(stack, method), weights), block by block of entries: each entry's value
    depends on its own column only, so the blocks give the whole computation's result exactly."""
    flat = stack.reshape(len(stack), -1)
    merged = torch.empty(flat.shape[1], dtype=stack.dtype, device=stack.device)
    for start in range(0, flat.shape[1], BLOCK):
        block = flat[:, start:start + BLOCK]
        merged[start:start + BLOCK] = disjoint_mean(block, sign_elect(block, method), weights)
    return merged.reshape(stack.shape[1:])


def weighted_sum(stack: torch.Tensor, weights: Sequence[float] | None, overwrite: bool = False) -> torch.Tensor:
    """Σ_t w_t x_t, each vector scaled in place where the caller gave the stack up."""
    if weights is None:
        return stack.sum(dim=0)
    flat = _owned(stack, overwrite)
    flat.mul_(_column(weights, flat))
    return flat.sum(dim=0).reshape(stack.shape[1:])


def weight_averaging(stack: torch.Tensor, *, weights: Sequence[float] | None = None, overwrite: bool = False,
                     **_) -> torch.Tensor:
    if weights is None:
        return stack.mean(dim=0)
    if math.fsum(weights) == 0:
        raise TaskarithError("weight averaging divides by the sum of the weights, which is 0")
    return weighted_sum(stack, weights, overwrite) / math.fsum(weights)


def task_arithmetic(stack: torch.Tensor, *, weights: Sequence[float] | None = None, overwrite: bool = False,
                    **_) -> torch.Tensor:
    return weighted_sum(stack, weights, overwrite)


def ties(stack: torch.Tensor, *, density: Density = 0.2, weights: Sequence[float] | None = None,
         majority_sign_method: SignMethod = "total", overwrite: bool = False, **_) -> torch.Tensor:
    return elect_and_mean(magnitude_prune(stack, density, overwrite=overwrite), weights, majority_sign_method)


def dare(stack: torch.Tensor, *, density: Density = 0.2, generator: torch.Generator,
         weights: Sequence[float] | None = None, overwrite: bool = False, **_) -> torch.Tensor:
    return weighted_sum(random_prune(stack, density, generator, overwrite=overwrite), weights, overwrite=True)


def dare_ties(stack: torch.Tensor, *, density: Density = 0.2, generator: torch.Generator,
              weights: Sequence[float] | None = None, majority_sign_method: SignMethod = "total",
              overwrite: bool = False, **_) -> torch.Tensor:
    return elect_and_mean(random_prune(stack, density, generator, overwrite=overwrite), weights, majority_sign_method)
