"""What the merge methods that read data take besides the task vectors, and the model views they share.

Fisher merging and RegMean read a fixed number of each task's training examples, at that task's fine-tuned
weights θ0 + τ_t; AdaMerging reads unlabeled test inputs, at the merged weights it learns.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, Sequence, Sized

import torch

from ..config import MergeDataConfig
from ..groundwork.errors import TaskarithError
from ..models.base import Batch, Model
from ..vectors import TaskVector


@dataclass(frozen=True)
class MergeData:
    """One entry per task vector, in the vectors' order: the frozen head, the training split (inputs and
    labels) and the unlabeled test inputs."""

    model: Model
    heads: Sequence[torch.Tensor]
    train_inputs: Sequence[Sequence] = ()
    train_labels: Sequence[Sequence[int]] = ()
    test_inputs: Sequence[Sequence] = ()
    settings: MergeDataConfig = field(default_factory=MergeDataConfig)
    progress: bool = False

    def check(self, count: int, needs: str, method: str) -> None:
        """There is one head and one split of what `needs` names for each of `count` task vectors."""
        parts: dict[str, Sequence[Sized]] = {"heads": self.heads}
        if needs == "train":
            parts.update(train_inputs=self.train_inputs, train_labels=self.train_labels)
        if needs == "test-inputs":
            parts["test_inputs"] = self.test_inputs
        for name, part in parts.items():
            if len(part) != count:
                raise TaskarithError(f"{method} reads {name} for each task vector: {len(part)} given for {count}")
            empty = [i for i, p in enumerate(part) if name != "heads" and len(p) == 0]
            if empty:
                raise TaskarithError(f"{method}: {name} of task vector {empty[0] + 1} is empty")


def example_subset(n: int, count: int, seed: int) -> list[int]:
    """`count` of n examples (all where count ≥ n), drawn by a seeded permutation, in ascending order."""
    if count >= n:
        return list(range(n))
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count]
    return sorted(chosen.tolist())


def batches(model: Model, inputs: Sequence, indices: Sequence[int], batch_size: int) -> Iterator[Batch]:
    """The chosen inputs collated in batches of `batch_size`, on the model's device."""
    for start in range(0, len(indices), batch_size):
        yield model.to_device(model.collate([inputs[i] for i in indices[start:start + batch_size]]))


def weights_at(model: Model, tv: TaskVector) -> dict[str, torch.Tensor]:
    """θ0 + τ for the parameters τ covers: the fine-tuned weights a non-linear task vector stands for."""
    params = model.named_weights()
    return {n: params[n].detach() + t.to(params[n].dtype) for n, t in tv.tensors.items()}


@contextlib.contextmanager
def frozen(model: Model) -> Iterator[None]:
    """The module's own parameters need no gradient inside the block (only the merge's own tensors do), so
    nothing is accumulated into them; their flags are put back on exit."""
    params = list(model.net.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
