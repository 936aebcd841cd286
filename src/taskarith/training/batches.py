"""Which training examples each optimizer step takes."""

from __future__ import annotations

import functools
from typing import Sequence

import torch


def batch_indices(n: int, batch_size: int, seed: int, step: int, lengths: Sequence[int] | None = None,
                  window: int = 8) -> list[int]:
    """The examples of one step; the order depends on (seed, step) only, so a resumed run sees the same data.

    Each epoch is a seeded permutation. With `lengths`, each window of `window` batches is sorted by length
    before it is cut into batches, and the batches are then shuffled: batches of similar lengths pad less."""
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    return _epoch_plan(n, batch_size, seed, epoch, tuple(lengths) if lengths is not None else None, window)[pos]


@functools.lru_cache(maxsize=4)
def _epoch_plan(n: int, batch_size: int, seed: int, epoch: int, lengths: tuple[int, ...] | None,
                window: int) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen).tolist()
    per_epoch = max(1, n // batch_size)
    if lengths is None:
        return [perm[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch)]
    used = perm[:per_epoch * batch_size] if n >= batch_size else perm
    span = window * batch_size
    ordered = [i for start in range(0, len(used), span)
               for i in sorted(used[start:start + span], key=lambda i: lengths[i])]
    batches = [ordered[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]
