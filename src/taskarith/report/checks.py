"""Checks of our own protocol and measures of our own, kept apart from the paper's claims.

The paper reports no negation result, no α ties and no gain over zero-shot: these check that the protocol did
what it should on this data. The fine-tune's own memory is a measure of ours (Table 4's "Cost" is the size of
the parameters held, tested among the claims), and it is process-level and noisy, so it is tested over seeds.
"""

from __future__ import annotations

import statistics
from typing import Mapping

from .stats import paired
from .tables import label, merge_label, paradigm_names
from .verdicts import Claim, interval, test_text

PASSES, FAILS_CHECK, NOTE = "passes", "fails", "note"


def negation(results: Mapping) -> list[Claim]:
    """On test, the worst control task over the targets keeps `negation_keep` of its pre-trained accuracy.
    α was chosen on validation, so test may fall short; the check says where it does."""
    keep = results.get("config", {}).get("eval", {}).get("negation_keep", 0.95)
    rows = []
    for p in paradigm_names(results["paradigms"]):
        worst = {}  # seed: (share kept, target)
        for s, r in results["paradigms"][p]["seeds"].items():
            kept = [(n["control"] / n["pretrained_control"], t) for t, n in (r.get("negation") or {}).items()
                    if n["pretrained_control"]]
            if kept:
                worst[s] = min(kept)
        if not worst:
            continue
        seed = min(worst, key=worst.__getitem__)
        passed = sum(share >= keep for share, _ in worst.values())
        rows.append(Claim(f"Negation keeps the control at ≥ {100 * keep:g}% on test, {label(p)}",
                          "the protocol's rule (α chosen on validation)",
                          f"worst {100 * worst[seed][0]:.1f}% (target {worst[seed][1]}, seed {seed}); "
                          f"kept in {passed} of {len(worst)} seed(s)", "every target of each seed", "—",
                          PASSES if passed == len(worst) else FAILS_CHECK))
    return rows


def alpha_edges(results: Mapping) -> Claim:
    """How often task addition's α was a tie, and how often an α that was searched (task addition's, each
    merge method's) sat at the top of its grid, which makes the figure a lower bound."""
    searched = []  # (label, chosen α, its grid's top)
    ties = choices = 0
    for p, entry in results["paradigms"].items():
        for r in entry["seeds"].values():
            choices += 1
            ties += (r["addition"].get("alpha_ties") or 1) > 1
            for method, found in [("task arithmetic", r["addition"]), *(r.get("merges") or {}).items()]:
                grid = [float(a) for a in found.get("curve", {})]
                if len(grid) > 1:
                    searched.append((f"{label(p)} {merge_label(method)}", found["alpha"], max(grid)))
    top = [name for name, alpha, edge in searched if alpha == edge]
    where = ", ".join(f"{n} ×{top.count(n)}" if top.count(n) > 1 else n for n in dict.fromkeys(top)) or "none"
    return Claim("α inside its grid", "each searched α below its grid's top",
                 f"{ties} ties in {choices} addition choices; at the top of the grid in {len(top)} of "
                 f"{len(searched)} searched choices ({where})", "paradigm × method × seed", "—",
                 PASSES if not top else NOTE)


def rates_inside(results: Mapping) -> list[Claim]:
    search = results.get("lr_search") or {}
    rows = []
    for p in paradigm_names(search):
        rates = sorted(float(r) for r in search[p]["validation"])
        chosen = float(search[p]["chosen"])
        edge = chosen == rates[-1] or chosen == rates[0]
        rows.append(Claim(f"Learning rate inside the search grid, {label(p)}", "—",
                          f"chose {chosen:g} of {', '.join(f'{r:g}' for r in rates)}", "seed 0 validation", "—",
                          NOTE if edge else PASSES))
    return rows


def zero_shot_gain(results: Mapping) -> list[Claim]:
    """The unified model beats the zero-shot model on mean test accuracy, paired over seeds (the zero-shot
    model is the same for every seed)."""
    pre = 100 * statistics.fmean(results["pretrained"]["test"].values())
    rows = []
    for p in paradigm_names(results["paradigms"]):
        seeds = results["paradigms"][p]["seeds"].values()
        t = paired(100 * r["addition"]["absolute"] - pre for r in seeds)
        rows.append(Claim(f"Task addition gains over zero-shot, {label(p)}", f"zero-shot {pre:.1f}%",
                          interval(t), test_text(t, "seeds"), "—", t.verdict))
    return rows


def finetune_memory(results: Mapping) -> Claim:
    """Ours: the fine-tune's own peak memory above what the process held before it, attention-only over
    non-linear, per seed (the largest over tasks)."""
    name = "Ours: attention-only's fine-tune memory below non-linear's"
    paradigms = results["paradigms"]
    if "attention" not in paradigms or "nonlinear" not in paradigms:
        return Claim(name, "—", "—", "—", "—", "not measured")

    def peak(r: Mapping) -> float | None:
        values = [t.get("memory_increase_bytes") for t in r["training"].values()]
        return None if any(v is None for v in values) else float(max(values))

    seeds = [s for s in paradigms["attention"]["seeds"] if s in paradigms["nonlinear"]["seeds"]]
    pairs = [(peak(paradigms["attention"]["seeds"][s]), peak(paradigms["nonlinear"]["seeds"][s])) for s in seeds]
    measured = [(a, b) for a, b in pairs if a is not None and b is not None and b != 0]
    if not pairs or len(measured) < len(pairs):
        return Claim(name, "—", "not recorded", "—", "—", "not measured")
    t = paired(1 - a / b for a, b in measured)
    return Claim(name, "not a claim of the paper", f"1 − ratio: {interval(t, unit='', digits=2)}",
                 test_text(t, "seeds; process peak RSS above the fine-tune's start"), "—", t.verdict)


def alpha_choice_loss(curve: Mapping[str, Mapping[str, float]], alpha: float) -> tuple[float, float]:
    """(the test-best α, test absolute accuracy lost by `alpha` against it, in pp) on a curve with test at
    every α; ties go to the smallest α, as on validation."""
    best = max(sorted(curve, key=float), key=lambda a: curve[a]["test_abs"])
    return float(best), 100 * (curve[best]["test_abs"] - curve[f"{alpha:g}"]["test_abs"])


def alpha_choice(results: Mapping) -> list[Claim]:
    """Where test was scored at every α: what choosing α on validation cost against the test-best α."""
    rows = []
    for p in paradigm_names(results["paradigms"]):
        runs = [r["addition"] for r in results["paradigms"][p]["seeds"].values()]
        if not runs or not all("test_abs" in v for r in runs for v in r["curve"].values()):
            continue
        losses = [alpha_choice_loss(r["curve"], r["alpha"])[1] for r in runs]
        val = max(d.get("sizes", {}).get("val", 0) for d in results["tasks"].values())
        t = paired(losses)
        rows.append(Claim(f"α chosen on validation near the test-best α, {label(p)}", "loss 0 pp",
                          f"test absolute lost: {interval(t)}", f"seeds; at most {val} validation examples a task", "—",
                          NOTE if t.mean > 0 else PASSES))
    return rows


def protocol_checks(results: Mapping) -> list[Claim]:
    return [*negation(results), alpha_edges(results), *alpha_choice(results), *rates_inside(results),
            *zero_shot_gain(results), finetune_memory(results)]
