"""Deterministic stratified sampling over integer labels: the split and cap protocol. Pure functions, numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def allocate(counts: Sequence[int] | np.ndarray, n: int, upper: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Per-class sizes summing to min(n, sum(upper)), proportional to `counts` by largest remainder,
    never above `upper` (default: `counts`), and at least one for every class that can give one when n allows."""
    sizes = np.asarray(counts, dtype=np.int64)
    most = sizes if upper is None else np.minimum(np.asarray(upper, dtype=np.int64), sizes)
    n = int(min(n, most.sum()))
    if n <= 0:
        return np.zeros_like(sizes)
    quota = sizes * (n / sizes.sum())
    take = np.minimum(np.floor(quota).astype(np.int64), most)
    can = most > 0
    if n >= can.sum():
        take[can] = np.maximum(take[can], 1)
    # One at a time, to the class furthest below its quota or from the one furthest above it; ties go to
    # the lowest class index, which keeps the result deterministic.
    while take.sum() < n:
        take[np.argmax(np.where(take < most, quota - take, -np.inf))] += 1
    while take.sum() > n:
        take[np.argmax(np.where(take > 1, take - quota, -np.inf))] -= 1
    return take


def stratified_sample(labels: Sequence[int], n: int, seed: int, *, leave_one: bool = False) -> np.ndarray:
    """Sorted indices of n examples drawn per class in proportion to the class sizes.
    With `leave_one`, every class with two or more examples keeps at least one example out of the sample."""
    classes = np.asarray(labels)
    if classes.size == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(classes, return_inverse=True)
    counts = np.bincount(inverse)
    upper = np.where(counts > 1, counts - 1, 0) if leave_one else counts
    take = allocate(counts, n, upper)
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(inverse == c))[:k] for c, k in enumerate(take)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def held_count(n: int, fraction: float) -> int:
    """How many of n examples a `fraction` split holds out (rounded half up)."""
    return int(np.floor(fraction * n + 0.5))


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep_idx, held_idx): disjoint sorted index arrays covering all examples, with about `fraction` of
    each class held out. A class's last example is never held out, so both sides see every class they can."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    held = stratified_sample(labels, held_count(len(labels), fraction), seed, leave_one=True)
    keep = np.setdiff1d(np.arange(len(labels)), held, assume_unique=True)
    return keep, held


def stratified_cap(labels: Sequence[int], cap: int, seed: int) -> np.ndarray:
    """Sorted indices of at most `cap` examples that keep the class proportions (and one per class where cap allows)."""
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    if cap >= len(labels):
        return np.arange(len(labels), dtype=np.int64)
    return stratified_sample(labels, cap, seed)
