"""The one interface every model family implements: a representation module f(x; θ) and a frozen head.

θ are the parameters of `net` under their own names. `represent` runs f with the module's own
parameters or with a partial override (for functional calls, linearization and merged weights), so
the trainer, task vectors, merging and analyses never need to know which family they talk to.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

Batch = dict[str, torch.Tensor]


class Family(ABC):
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

    def represent(self, batch: Batch, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """f(x; θ); `params` overrides some or all of the module's parameters by name."""
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
        h = hashlib.sha256()
        for name in sorted(names if names is not None else params):
            t = params[name].detach().contiguous().cpu()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()
