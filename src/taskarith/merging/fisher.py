"""Fisher merging (Matena & Raffel, NeurIPS 2022): each task's weights averaged with its diagonal Fisher.

θ* = Σ_t F_t θ_t / Σ_t F_t, entry by entry. With θ_t = θ0 + τ_t the θ0 terms cancel, so the merged task vector
is τ* = Σ_t F_t τ_t / Σ_t F_t. F_t is the diagonal of the model's own Fisher at θ_t,

    F_t = 1/N Σ_i Σ_c p(c | x_i) (∂ log p(c | x_i) / ∂θ)²,

over N training examples of task t, with the expectation over classes taken exactly (no label is sampled).
Every task's entries are floored at FISHER_FLOOR and no Fisher is normalised, so where no task's model is
sensitive (rows of unseen tokens) the merge is the plain mean. The authors' script differs by default: it
floors only the first model's Fisher and divides each Fisher by its L2 norm. Here the tasks' Fishers, measured
on equal numbers of examples, keep their relative scale: a task whose model is more sensitive weighs more.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..models.base import Model
from ..vectors import TaskVector
from .data import MergeData, batches, example_subset, frozen, weights_at

FISHER_FLOOR = 1e-6  # the value of the authors' `fisher_floor`, applied to every task


def fisher_weighted(stack: torch.Tensor, *, statistic: torch.Tensor, **_) -> torch.Tensor:
    """Σ_t F_t τ_t / Σ_t F_t over the stacked vectors [T, ...] and their Fishers [T, ...]."""
    fisher = statistic.to(torch.float64).clamp(min=FISHER_FLOOR)
    return ((fisher * stack.to(torch.float64)).sum(dim=0) / fisher.sum(dim=0)).to(stack.dtype)


def diagonal_fisher(model: Model, tv: TaskVector, head: torch.Tensor, inputs: Sequence, *,
                    indices: Sequence[int], progress: bool = False) -> dict[str, torch.Tensor]:
    """F at θ0 + τ over the chosen inputs, for the parameters τ covers (one example at a time: a batched
    forward would make each per-class backward pass cover the whole batch)."""
    params = {n: p.requires_grad_(True) for n, p in weights_at(model, tv).items()}
    names = list(params)
    total = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    progress_bar = tqdm(total=len(indices), desc=f"Fisher {tv.label()}", disable=not progress, leave=False)
    with frozen(model), progress_bar:
        for batch in batches(model, inputs, indices, 1):
            log_probs = torch.log_softmax(model.logits(model.represent(batch, params), head), dim=-1)[0]
            # row c of the cotangents is √p_c e_c, so the squared gradients come out already weighted by p_c
            cotangents = torch.diag(log_probs.detach().exp().sqrt())
            grads = torch.autograd.grad(log_probs, [params[n] for n in names], grad_outputs=cotangents,
                                        is_grads_batched=True, allow_unused=True)
            for n, g in zip(names, grads):
                if g is not None:  # summed over classes in float32, over examples in float64
                    total[n] += g.square().sum(dim=0)
            progress_bar.update()
    return {n: (t / max(len(indices), 1)).to(params[n].dtype) for n, t in total.items()}


def task_fishers(vectors: Sequence[TaskVector], data: MergeData, seed: int) -> dict[str, torch.Tensor]:
    """Each task's diagonal Fisher on `settings.fisher_examples` of its training examples, stacked by name."""
    per_task = []
    for t, tv in enumerate(vectors):
        inputs = data.train_inputs[t]
        indices = example_subset(len(inputs), data.settings.fisher_examples, seed + t)
        per_task.append(diagonal_fisher(data.model, tv, data.heads[t], inputs, indices=indices,
                                        progress=data.progress))
    return {n: torch.stack([f[n] for f in per_task]) for n in per_task[0]}
