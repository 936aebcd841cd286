"""RegMean (Jin et al., ICLR 2023): each linear layer merged in closed form from its inputs' Gram matrices.

For a linear layer y = W x, the weights whose outputs are closest to every task's own on that task's inputs
X_t solve min_W Σ_t ‖X_t Wᵀ − X_t W_tᵀ‖², so Wᵀ = (Σ_t G_t)⁻¹ Σ_t G_t W_tᵀ with G_t = X_tᵀ X_t. With
W_t = W0 + τ_t the W0 terms cancel: τ*ᵀ = (Σ_t G_t)⁻¹ Σ_t G_t τ_tᵀ. The paper scales each G_t's off-diagonal
entries by a factor in [0, 1] (`off_diagonal`; 1 is the plain closed form, 0 a per-input weighted mean).
Every other tensor (biases, LayerNorm, embeddings) is averaged, as in the authors' code.

G_t is taken at task t's fine-tuned weights θ0 + τ_t on its training examples, averaged over input rows
(tokens) with padding left out, so a task's weight in the merge does not depend on its texts' lengths.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models.base import Model
from ..vectors import TaskVector
from .data import MergeData, batches, example_subset, weights_at
from .kinds import Share


def regmean(stack: torch.Tensor, *, statistic: torch.Tensor | None = None, off_diagonal: Share = 0.9,
            **_) -> torch.Tensor:
    """τ*ᵀ = (Σ_t G̃_t)⁻¹ Σ_t G̃_t τ_tᵀ over stacked weights [T, out, in] and Grams [T, in, in]; the mean of
    the stack where a tensor has no Gram matrices (it is not a linear layer's weight)."""
    if statistic is None:
        return stack.to(torch.float64).mean(dim=0).to(stack.dtype)
    grams = statistic.to(torch.float64)
    diagonal = torch.diag_embed(torch.diagonal(grams, dim1=-2, dim2=-1))
    scaled = off_diagonal * grams + (1 - off_diagonal) * diagonal
    lhs = scaled.sum(dim=0)
    rhs = (scaled @ stack.to(torch.float64).transpose(-1, -2)).sum(dim=0)
    # least squares, not solve: an input feature no example ever activates leaves the sum singular
    solution = torch.linalg.lstsq(lhs, rhs, driver="gelsd").solution
    return solution.transpose(-1, -2).to(stack.dtype)


def linear_layers(model: Model, names: Sequence[str]) -> dict[str, nn.Linear]:
    """The nn.Linear modules whose weight is among `names`, by that weight's name."""
    wanted = set(names)
    return {f"{prefix}.weight": m for prefix, m in model.net.named_modules()
            if isinstance(m, nn.Linear) and f"{prefix}.weight" in wanted}


def gram_matrices(model: Model, tv: TaskVector, inputs: Sequence, *, indices: Sequence[int],
                  batch_size: int, progress: bool = False) -> dict[str, torch.Tensor]:
    """G = mean over input rows x of x xᵀ, for each linear weight τ covers, at θ0 + τ; rows at padded
    positions (attention_mask 0) are left out."""
    layers = linear_layers(model, list(tv.tensors))
    sums = {n: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for n, m in layers.items()}
    rows = dict.fromkeys(layers, 0)
    mask: list[torch.Tensor | None] = [None]

    def record(name: str):
        def hook(module, args):
            x = args[0].detach().float()
            keep = mask[0]
            x = x[keep] if keep is not None and keep.shape == x.shape[:-1] else x.reshape(-1, x.shape[-1])
            sums[name] += (x.T @ x).cpu()  # a batch's sum in float32, the batches' in float64
            rows[name] += x.shape[0]
        return hook

    handles = [m.register_forward_pre_hook(record(n)) for n, m in layers.items()]
    params = weights_at(model, tv)
    try:
        with torch.no_grad():
            for batch in tqdm(batches(model, inputs, indices, batch_size), desc=f"RegMean {tv.label()}",
                              total=-(-len(indices) // batch_size), disable=not progress, leave=False):
                attention = batch.get("attention_mask")
                mask[0] = attention.bool() if attention is not None else None
                model.represent(batch, params)
    finally:
        for h in handles:
            h.remove()
    return {n: (sums[n] / max(rows[n], 1)).to(torch.float32) for n in layers}


def task_grams(vectors: Sequence[TaskVector], data: MergeData, seed: int) -> dict[str, torch.Tensor]:
    """Each task's Gram matrices on `settings.regmean_examples` of its training examples, stacked per weight."""
    per_task = []
    for t, tv in enumerate(vectors):
        inputs = data.train_inputs[t]
        indices = example_subset(len(inputs), data.settings.regmean_examples, seed + t)
        per_task.append(gram_matrices(data.model, tv, inputs, indices=indices,
                                      batch_size=data.settings.batch_size, progress=data.progress))
    return {n: torch.stack([g[n] for g in per_task]) for n in per_task[0]}
