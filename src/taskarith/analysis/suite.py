"""Runs the analyses the config switches on, over the vectors a run produced (first seed).

`run_analyses` is the one place that decides what runs; the section functions compute one analysis each,
for it and for `taskarith analyze`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..vectors import TaskVector
from .ablation import ablation
from .advantage import nonlinear_advantage
from .disentangle import disentangle, pair_key, resolve_pair
from .efficiency import efficiency
from .kernel import kernel
from .similarity import similarity

FirstSeed = Mapping[str, Mapping[str, TaskVector]]  # paradigm -> task -> τ


def similarity_section(first: FirstSeed) -> dict:
    return {p: similarity(dict(v)) for p, v in first.items()}


def efficiency_section(exp, first: FirstSeed, paradigms: Mapping[str, dict]) -> dict:
    return {p: efficiency(dict(v), {t: exp.run_dir / paradigms[p]["seeds"]["0"]["vectors"][t] for t in v})
            for p, v in first.items()}


def disentangle_section(exp, first: FirstSeed, pairs: Sequence[tuple[str, str]], *, grid_points: int,
                        span: float, points: int, log=print) -> dict:
    return {pair_key(pair): disentangle(exp, first, pair, grid_points=grid_points, span=span, points=points,
                                        log=log)
            for pair in pairs}


def run_analyses(exp, all_vectors: dict, paradigms: dict, log=print) -> dict:
    cfg = exp.cfg.analysis
    pairs = [resolve_pair(exp, pair) for pair in cfg.disentangle_pairs]  # a typo fails before any work
    first = {p: seeds[0] for p, seeds in all_vectors.items()}
    out: dict = {}
    if cfg.similarity and len(exp.tasks) > 1:
        log("analysis: task-vector similarity")
        out["similarity"] = similarity_section(first)
    if cfg.efficiency:
        log("analysis: efficiency")
        out["efficiency"] = efficiency_section(exp, first, paradigms)
    if "nonlinear" in paradigms:
        log("analysis: non-linear advantage")
        out["advantage"] = nonlinear_advantage(paradigms)
    if cfg.kernel:
        log("analysis: kernel behaviour")
        individual = {p: paradigms[p]["seeds"]["0"]["individual"]["test"] for p in first}
        out["kernel"] = kernel(exp, first, individual, log=log)
    if pairs:
        log(f"analysis: weight disentanglement of {', '.join(pair_key(p) for p in pairs)}")
        out["disentangle"] = disentangle_section(exp, first, pairs, grid_points=cfg.disentangle_grid,
                                                 span=cfg.disentangle_range, points=cfg.disentangle_points, log=log)
    if cfg.ablation:
        log(f"analysis: ablation of {', '.join(cfg.ablation)}")
        out["ablation"] = ablation(exp, cfg.ablation, exp.pretrained(), log=log)
    return out
