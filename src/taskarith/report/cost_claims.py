"""The paper's cost and ablation claims (Tables 4 and 5), tested against a results dict.

Table 4's "Cost (MB)" is the fp32 size of the parameters a fine-tune holds: the same for attention-only and
non-linear, doubled for NTK, which keeps θ0 and a τ of every trained parameter. Parameter counts are exact and
compared as such. Step times are per seed: each task's median step (after the first), then the median over
tasks, so that a burst of contention from another process moves it little; the ratio to non-linear is tested
over seeds.
"""

from __future__ import annotations

import statistics
from typing import Mapping

from ..paradigms import PARADIGMS
from .stats import FAILS, HOLDS, Paired, holm, paired
from .verdicts import Claim, effect_text, interval, missing, per_seed, common_seeds, test_text

TABLE4_MINUTES = {"nonlinear": 17 + 38 / 60, "linear": 40 + 59 / 60, "attention": 10 + 15 / 60}
TABLE4_HELD_M = {"nonlinear": 222, "linear": 470, "attention": 222}
TABLE5 = {"attention": 78.37, "attention+bias": 77.71, "attention+mlp": 76.52, "attention+mlp+bias": 77.80}


def held_parameters(name: str, entry: Mapping) -> int:
    """Parameters a fine-tune holds: the model, plus τ beside the frozen θ0 where the paradigm is linearized."""
    selection = entry["selection"]
    return selection["total"] + (selection["count"] if PARADIGMS[name].linear else 0)


def step_seconds(seed: Mapping) -> tuple[float, bool]:
    """The seed's median over tasks of each task's median step, and whether per-step medians were recorded
    (older runs kept only the mean step after the first)."""
    training = seed["training"].values()
    medians = all("median_seconds_per_step" in t for t in training)
    key = "median_seconds_per_step" if medians else "seconds_per_step"
    return statistics.median(t[key] for t in training), medians


def _exact(name: str, paper: str, ours: str, holds: bool) -> Claim:
    return Claim(name, paper, ours, "exact count", "—", HOLDS if holds else FAILS)


def _ratio(t: Paired, sign: int) -> str:
    """A test of sign·(ratio − 1) shown as the ratio with its interval."""
    mean, low, high = 1 + sign * t.mean, 1 + sign * t.low, 1 + sign * t.high
    if t.low != t.low:
        return f"{mean:.2f}× (n = {t.n})"
    return f"{mean:.2f}× [{min(low, high):.2f}, {max(low, high):.2f}] (n = {t.n})"


def step_ratio(results: Mapping, name: str, sign: int) -> Claim:
    """`name` against non-linear; sign +1: the paper says slower (NTK), −1: faster (attention-only)."""
    paradigms = results["paradigms"]
    paper_ratio = TABLE4_MINUTES[name] / TABLE4_MINUTES["nonlinear"]
    what = "slower" if sign > 0 else "faster"
    claim = f"Table 4: {'NTK' if name == 'linear' else 'attention-only'} trains {what} than non-linear"
    paper = f"{paper_ratio:.2f}× non-linear's time"
    if name not in paradigms or "nonlinear" not in paradigms:
        return missing(claim, paper)
    seeds = common_seeds(results, (name, "nonlinear"))
    ratios, medians = [], True
    for s in seeds:
        mine, a = step_seconds(paradigms[name]["seeds"][s])
        theirs, b = step_seconds(paradigms["nonlinear"]["seeds"][s])
        ratios.append(mine / theirs)
        medians = medians and a and b
    t = paired(sign * (r - 1) for r in ratios)
    kind = "median step" if medians else "mean step (no per-step record)"
    effect = f"{paper_ratio:.2f}×: no interval" if t.low != t.low else \
        f"{paper_ratio:.2f}× {'excluded' if t.excludes(sign * (paper_ratio - 1)) else 'inside'}"
    return Claim(claim, paper, f"step-time ratio {_ratio(t, sign)}", test_text(t, f"seeds; {kind}"), effect,
                 t.verdict)


def efficiency(results: Mapping) -> list[Claim]:
    paradigms = results["paradigms"]
    rows = []
    if "attention" in paradigms and "nonlinear" in paradigms:
        att, nl = paradigms["attention"]["selection"], paradigms["nonlinear"]["selection"]
        rows.append(_exact("Table 4: fewer trainable parameters for attention-only", "63.7 M of 222 M (28.7%)",
                           f"{att['count'] / 1e6:.2f} M of {att['total'] / 1e6:.2f} M ({100 * att['share']:.1f}%)",
                           att["count"] < nl["count"]))
    if "linear" in paradigms and "nonlinear" in paradigms:
        lin, nl = held_parameters("linear", paradigms["linear"]), held_parameters("nonlinear", paradigms["nonlinear"])
        paper = TABLE4_HELD_M["linear"] / TABLE4_HELD_M["nonlinear"]
        rows.append(_exact("Table 4: NTK holds about twice the parameters (θ0 and τ)",
                           f"470 M vs 222 M ({paper:.2f}×)", f"{lin / 1e6:.2f} M vs {nl / 1e6:.2f} M ({lin / nl:.2f}×)",
                           lin > nl))
    rows.append(step_ratio(results, "linear", +1))
    rows.append(step_ratio(results, "attention", -1))
    return rows


def ablation(results: Mapping) -> list[Claim]:
    """Table 5: attention weights alone against each larger preset, absolute accuracy paired per seed, one
    Holm family of three."""
    section = (results.get("analysis") or {}).get("ablation") or {}
    others = [p for p in TABLE5 if p != "attention"]
    present = [p for p in others if "attention" in section and p in section]
    tests = holm([per_seed(section, "attention", p, lambda r: 100 * r["addition"]["absolute"],
                           common_seeds(results, ("attention", p), section)) for p in present])
    found = dict(zip(present, tests))
    rows = []
    for p in others:
        claim, paper = f"Table 5: attention weights alone > {p}", f"{TABLE5['attention']:.2f} vs {TABLE5[p]:.2f}"
        if p not in found:
            rows.append(missing(claim, paper, "not run (analysis.ablation)"))
            continue
        t = found[p]
        rows.append(Claim(claim, paper, interval(t), test_text(t, "seeds", f"{len(tests)} Table 5 tests"),
                          effect_text(t, TABLE5["attention"] - TABLE5[p]), t.verdict))
    return rows
