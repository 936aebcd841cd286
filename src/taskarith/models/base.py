"""The one interface every model family implements: a representation module f(x; θ) and a frozen head.

θ are the parameters of `net` under their own names. `represent` runs f with the module's own
parameters or with a partial override (for functional calls, linearization and merged weights), so
the trainer, task vectors, merging and analyses never need to know which family they talk to.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..groundwork.tensor_files import named_digest

Batch = dict[str, torch.Tensor]


class Model(ABC):
    """A pre-trained model behind one small interface."""

    model_id: str
    net: nn.Module

    @abstractmethod
    def collate(self, inputs: Sequence[Any]) -> Batch:
        """Raw inputs (texts, images) to the tensors `net` takes."""

    @abstractmethod
    def pool(self, outputs: Any, batch: Batch) -> torch.Tensor:
        """`net`'s outputs to the representation f(x), shape [batch, dim]."""

    @abstractmethod
    def zero_shot_head(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """The frozen head built with the pre-trained model, shape [classes, dim]."""

    def logits(self, representation: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        """Scaled cosine between normalized representations and the head rows."""
        rep = nn.functional.normalize(representation, dim=-1)
        return self.logit_scale * rep @ head.T

    logit_scale: float = 100.0
    precision: str = "auto"  # auto: bf16 autocast on a CUDA device that supports it, float32 elsewhere

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def uses_bf16(self) -> bool:
        """bf16 autocast where `precision` asks for it: `auto` on a CUDA device that supports it, never on CPU."""
        if self.precision == "bf16":
            return True
        dev = self.device
        return self.precision == "auto" and dev.type == "cuda" and torch.cuda.is_bf16_supported()

    def to_device(self, batch: Batch) -> Batch:
        """Move a collated batch to the model; through pinned memory on CUDA, so the copy overlaps compute."""
        dev = self.device
        if dev.type == "cuda":
            return {k: v.pin_memory().to(dev, non_blocking=True) for k, v in batch.items()}
        return {k: v.to(dev) for k, v in batch.items()}

    def represent(self, batch: Batch, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """f(x; θ); `params` overrides some or all of the module's parameters by name. Under autocast the
        representation comes back in float32, so heads, losses and distances stay in full precision."""
        bf16 = self.uses_bf16()
        with torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            rep = self._forward(batch, params)
        return rep.float() if bf16 else rep

    def _forward(self, batch: Batch, params: Mapping[str, torch.Tensor] | None) -> torch.Tensor:
        """f(x; θ) in whatever precision `represent` set up; a family with its own forward overrides this."""
        if params is None:
            outputs = self.net(**batch)
        else:
            outputs = functional_call(self.net, dict(params), args=(), kwargs=batch, strict=False)
        return self.pool(outputs, batch)

    def named_weights(self) -> dict[str, torch.Tensor]:
        return dict(self.net.named_parameters())

    def fingerprint(self, names: Sequence[str] | None = None) -> str:
        """sha256 over the named θ0 tensors (all by default), so vectors refuse a foreign base."""
        params = self.named_weights()
        return named_digest(names if names is not None else params, params.__getitem__)
