"""Data parallelism with torch.distributed, as `torchrun` launches it: which rank this is, its share of each
global batch, and the collectives the fine-tune and the run need.

Every rank draws the same seeded batch plan and takes a contiguous share of each batch, so the data seen does
not depend on the number of ranks, and a checkpoint resumes under any number of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from ..groundwork.errors import TaskarithError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of one fine-tune; rank 0 alone writes files."""

    rank: int = 0
    world: int = 1

    @property
    def writes(self) -> bool:
        return self.rank == 0


def current_ranks() -> Ranks:
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def launched_by_torchrun() -> bool:
    """torchrun sets WORLD_SIZE; one process is the plain single-process path."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env() -> Ranks:
    """Join the process group torchrun describes: NCCL where there is CUDA, each rank on its local GPU, else gloo."""
    if not launched_by_torchrun():
        return Ranks()
    if not dist.is_available():
        raise TaskarithError("this torch build has no torch.distributed; run with one process")
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return current_ranks()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(batch: Sequence[int], ranks: Ranks) -> list[int]:
    """This rank's contiguous share of a global batch: sizes differ by at most one, the first ranks larger."""
    size, extra = divmod(len(batch), ranks.world)
    start = ranks.rank * size + min(ranks.rank, extra)
    return list(batch[start:start + size + (ranks.rank < extra)])


def micro_batches(indices: Sequence[int], cap: int | None) -> list[list[int]]:
    """`indices` cut into forwards of at most `cap` examples (one forward when cap is None)."""
    if cap is None or len(indices) <= cap:
        return [list(indices)]
    return [list(indices[i:i + cap]) for i in range(0, len(indices), cap)]


def loss_scale(examples: int, ranks: Ranks, global_batch: int) -> float:
    """The factor on a micro-batch's mean loss so that DDP's average over ranks of the summed gradients is the
    global batch's mean gradient: examples · world / global_batch (exactly 1.0 for one whole forward)."""
    return examples * ranks.world / global_batch


def all_sum(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Σ over ranks (the value itself on one rank), so every rank takes the same decision on it."""
    if ranks.world > 1:
        value = value.detach().clone()
        dist.all_reduce(value)
    return value


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


def from_rank0(value: Any, ranks: Ranks) -> Any:
    """Rank 0's `value` on every rank (a small picklable object)."""
    if ranks.world == 1:
        return value
    box = [value if ranks.writes else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
