"""NTK linearization with torch.func: f_lin(x; θ0 + τ) = f(x; θ0) + J_θ f(x; θ0) · τ.

θ0 lives once, in the module itself; τ may cover any subset of its parameters (the `attention` preset
linearizes only those and keeps the rest at θ0). Nothing non-linear is added on top.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch.func import jvp

from ..models.base import Batch, Model


def base_params(model: Model, names: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
    """θ0 for `names`, detached views of the module's own tensors (no copy)."""
    params = dict(model.net.named_parameters())
    return {n: params[n].detach() for n in names}


def linearized(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
               theta0: Mapping[str, torch.Tensor], tau: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """f(θ0) + J f(θ0)·τ for any fn of a parameter dict; differentiable in τ."""
    names = list(tau)
    # torch types jvp's result as a pair or (with has_aux) a triple, without an overload telling them apart
    out, tangent = jvp(fn, ({n: theta0[n] for n in names},), ({n: tau[n] for n in names},))  # type: ignore[misc]
    return out + tangent


def linearized_represent(model: Model, batch: Batch, theta0: Mapping[str, torch.Tensor],
                         tau: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The linearized representation module at θ0 + τ."""
    return linearized(lambda p: model.represent(batch, p), theta0, tau)
