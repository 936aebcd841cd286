"""What one paradigm trains and one optimizer step of it, over micro-batches and, under torchrun, over ranks.

non-linear: train the selected parameters of f in place. attention: non-linear with the `attention`
preset. linear: train τ in f(x; θ0) + J f(x; θ0)·τ, with θ0 held once by the module itself.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from ..config import TrainConfig
from ..models.base import Model
from ..paradigms import Paradigm
from .distributed import Ranks, all_sum
from .linearize import base_params, linearized_represent
from .selection import Selection, select

if TYPE_CHECKING:
    from torch.nn.parallel import DistributedDataParallel


def _schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, min(cfg.warmup_steps, cfg.steps), cfg.steps)


class Trainable:
    """What one paradigm trains, set up on the module; `close()` puts θ0 and requires_grad back."""

    def __init__(self, model: Model, paradigm: Paradigm, decay_toward: str = "zero"):
        self.model, self.paradigm = model, paradigm
        # AdamW decays what it trains (θ, or τ when linear) toward zero; the other target is decayed by hand:
        # +1 pulls θ toward θ0 (non-linear, base), −1 pulls θ0 + τ toward zero (linear, zero)
        self.decay_sign = {(False, "base"): 1.0, (True, "zero"): -1.0}.get((paradigm.linear, decay_toward), 0.0)
        self.selection: Selection = select(model.net, paradigm.preset)
        self.params = dict(model.net.named_parameters())
        self._requires = {n: p.requires_grad for n, p in self.params.items()}
        # autograd then never computes gradients of frozen parameters
        for p in self.params.values():
            p.requires_grad_(False)
        names = self.selection.names
        self.tensors: dict[str, torch.Tensor]  # what the optimizer trains: nn.Parameters
        if paradigm.linear:
            self.theta0 = base_params(model, names)
            self.tensors = {n: nn.Parameter(torch.zeros_like(self.theta0[n])) for n in names}
        else:
            self.theta0 = {n: self.params[n].detach().clone() for n in names}
            self.tensors = {n: self.params[n] for n in names}
            for t in self.tensors.values():
                t.requires_grad_(True)

    def forward(self, batch) -> torch.Tensor:
        if self.paradigm.linear:
            return linearized_represent(self.model, batch, self.theta0, self.tensors)
        return self.model.represent(batch)

    def decay(self, lr: float, weight_decay: float) -> None:
        """Decoupled weight decay toward the target AdamW cannot express: x ← (1 − lr·wd)·x ± lr·wd·θ0."""
        if not self.decay_sign or not weight_decay:
            return
        with torch.no_grad():
            tensors = list(self.tensors.values())
            torch._foreach_mul_(tensors, 1.0 - lr * weight_decay)
            torch._foreach_add_(tensors, [self.theta0[n] for n in self.tensors],
                                alpha=self.decay_sign * lr * weight_decay)

    def delta(self) -> dict[str, torch.Tensor]:
        """τ: the trained tangent for linear, θ_t − θ0 otherwise."""
        with torch.no_grad():
            if self.paradigm.linear:
                return {n: t.detach().clone() for n, t in self.tensors.items()}
            return {n: self.tensors[n].detach() - self.theta0[n] for n in self.selection.names}

    def close(self) -> None:
        if not self.paradigm.linear:
            with torch.no_grad():
                for n in self.selection.names:
                    self.params[n].copy_(self.theta0[n])
        for n, p in self.params.items():
            p.requires_grad_(self._requires[n])


def make_optimizer(trainable: Trainable, cfg: TrainConfig):
    in_optimizer = 0.0 if trainable.decay_sign else cfg.weight_decay
    optimizer = torch.optim.AdamW(list(trainable.tensors.values()), lr=cfg.lr, weight_decay=in_optimizer,
                                  foreach=True)
    return optimizer, _schedule(optimizer, cfg)


class _Trained(nn.Module):
    """The trained tensors as one module's parameters, for DistributedDataParallel: it averages exactly their
    gradients. The model and the frozen θ0 stay outside, never broadcast and never in the optimizer."""

    def __init__(self, trainable: Trainable):
        super().__init__()
        self.trained = nn.ParameterList(trainable.tensors.values())
        self._forward = trainable.forward

    def forward(self, batch):
        return self._forward(batch)


def replicate(trainable: Trainable, ranks: Ranks) -> DistributedDataParallel | None:
    """The DDP replica of what `trainable` trains, or None on one rank."""
    if ranks.world == 1:
        return None
    from torch.nn.parallel import DistributedDataParallel

    device = next(iter(trainable.tensors.values())).device
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(_Trained(trainable), device_ids=ids, gradient_as_bucket_view=True)


@dataclass(frozen=True)
class Piece:
    """One forward of a step: a collated micro-batch, its labels, and the factor on its mean loss."""

    batch: object
    labels: torch.Tensor
    scale: float = 1.0


def training_step(trainable: Trainable, head: torch.Tensor, pieces: Sequence[Piece], optimizer, scheduler,
                  grad_clip: float | None, weight_decay: float = 0.0, *,
                  replica: DistributedDataParallel | None = None,
                  ranks: Ranks = Ranks()) -> torch.Tensor:
    """One optimizer step over this rank's micro-batches; returns the global batch's mean loss, the same on every
    rank, checked for NaN before any update. Gradients sync across ranks on the last backward only."""
    forward = replica if replica is not None else trainable.forward
    losses = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        with replica.no_sync() if replica is not None and not last else contextlib.nullcontext():
            loss = nn.functional.cross_entropy(trainable.model.logits(forward(piece.batch), head), piece.labels)
            if piece.scale != 1.0:
                loss = loss * piece.scale
            loss.backward()
        losses.append(loss.detach())
    total = sum(losses[1:], losses[0])  # l0 + l1 + ..., in the pieces' order
    if ranks.world > 1:
        total = all_sum(total, ranks) / ranks.world
    if not torch.isfinite(total):
        optimizer.zero_grad(set_to_none=True)
        return total
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(list(trainable.tensors.values()), grad_clip, foreach=True)
    trainable.decay(optimizer.param_groups[0]["lr"], weight_decay)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total
