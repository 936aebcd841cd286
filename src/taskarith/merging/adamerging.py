"""Layer-wise AdaMerging (Yang et al., ICLR 2024): one coefficient per task and layer, learned on test inputs.

τ* = Σ_t λ_{t,l} τ_{t,l} for every layer l (each parameter tensor, as in the authors' code), with λ clamped to
[0, 1], starting at `init` and trained by Adam to minimise the summed mean prediction entropy of each task's
head on batches of that task's unlabeled test inputs. It reads test inputs, so it is transductive.

The merged model is the paradigm's own: θ0 + τ* for non-linear vectors, f(θ0) + J f(θ0)·τ* for linearized
ones, so the coefficients are learned for the model that is then scored.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..training.batches import batch_indices
from ..training.linearize import base_params, linearized_represent
from ..vectors import TaskVector
from .data import MergeData, frozen


def coefficient_sum(stack: torch.Tensor, *, statistic: torch.Tensor, **_) -> torch.Tensor:
    """Σ_t λ_t τ_t for one layer's stacked vectors [T, ...] and its coefficients [T]."""
    shape = (-1,) + (1,) * (stack.ndim - 1)
    return (statistic.to(stack.dtype).reshape(shape) * stack).sum(dim=0)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """The mean Shannon entropy of the softmax of each row."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1).mean()


def layer_coefficients(vectors: Sequence[TaskVector], data: MergeData, seed: int) -> dict[str, torch.Tensor]:
    """The learned λ: {layer name: [T] coefficients, clamped to [0, 1]}."""
    settings, model = data.settings, data.model
    names = sorted(vectors[0].tensors)
    stacks = [torch.stack([tv.tensors[n] for tv in vectors]).detach() for n in names]
    raw = torch.full((len(names), len(vectors)), float(settings.init), requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=settings.lr, betas=(0.9, 0.999))
    theta0 = base_params(model, names)
    linear = vectors[0].linear

    def represent(batch, tau):
        if linear:
            return linearized_represent(model, batch, theta0, tau)
        return model.represent(batch, {n: theta0[n] + tau[n] for n in names})

    with frozen(model):
        for step in tqdm(range(settings.steps), desc="AdaMerging", disable=not data.progress, leave=False):
            lam = raw.clamp(0.0, 1.0)
            tau = {n: coefficient_sum(s, statistic=lam[i]) for i, (n, s) in enumerate(zip(names, stacks))}
            loss = torch.zeros(())
            for t, inputs in enumerate(data.test_inputs):
                picked = batch_indices(len(inputs), settings.batch_size, seed + t, step)
                batch = model.to_device(model.collate([inputs[i] for i in picked]))
                loss = loss + entropy(model.logits(represent(batch, tau), data.heads[t]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    final = raw.detach().clamp(0.0, 1.0)
    return {n: final[i].clone() for i, n in enumerate(names)}
