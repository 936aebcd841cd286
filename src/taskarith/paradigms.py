"""The fine-tuning paradigms: the one registry that config, trainer, run and report read.

non-linear trains every weight in place; NTK linearization trains τ in f(x; θ0) + J f(x; θ0)·τ;
attention-only trains the Q, K, V and O projection weights in place (the `attention` preset).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .groundwork.errors import unknown


@dataclass(frozen=True)
class Paradigm:
    name: str
    label: str  # how tables and figures name it
    linear: bool
    preset: str  # which parameters it trains (training.selection.PRESETS, or regex:PATTERN)
    marker: str = "D"  # how figures draw it (matplotlib)
    color: str = "tab:purple"


PARADIGMS: dict[str, Paradigm] = {p.name: p for p in (
    Paradigm("nonlinear", "Non-linear", linear=False, preset="full", marker="o", color="tab:blue"),
    Paradigm("linear", "NTK linearization", linear=True, preset="full", marker="s", color="tab:orange"),
    Paradigm("attention", "Attention-only", linear=False, preset="attention", marker="^", color="tab:green"),
)}


def resolve_paradigm(name: str, preset: str | None = None) -> Paradigm:
    """The registered paradigm, trained with `preset` instead of its own where one is given."""
    if name not in PARADIGMS:
        raise unknown("paradigm", name, PARADIGMS)
    paradigm = PARADIGMS[name]
    return paradigm if preset is None else dataclasses.replace(paradigm, preset=preset)
