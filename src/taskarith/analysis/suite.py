"""Runs the analyses the config switches on, over the vectors a run produced (first seed)."""

from __future__ import annotations

from .efficiency import efficiency
from .similarity import similarity


def run_analyses(exp, all_vectors: dict, paradigms: dict, log=print) -> dict:
    cfg = exp.cfg.analysis
    first = {p: seeds[0] for p, seeds in all_vectors.items()}
    out: dict = {}
    if cfg.similarity and len(exp.tasks) > 1:
        out["similarity"] = {p: similarity(v) for p, v in first.items()}
    if cfg.efficiency:
        out["efficiency"] = {
            p: efficiency(v, {t: exp.run_dir / paradigms[p]["seeds"]["0"]["vectors"][t] for t in v})
            for p, v in first.items()
        }
    return out
