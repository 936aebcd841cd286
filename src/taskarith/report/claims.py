"""The paper's claims, tested against a results dict: one row per claim, computed, never written by hand.

Every comparison of two methods is a paired test (report/stats.py): per seed where the run measured each
seed, per task or task pair where an analysis ran on the first seed only. Table 2's six comparisons (three pairs
of paradigms on absolute and normalized accuracy) form one Holm family, Table 5's three another; the other rows
are tests of their own. A row made of two comparisons (attention-only against NTK and against non-linear)
holds only when both do. Table 4's parameter counts are exact, not estimates, and are compared as such.
"""

from __future__ import annotations

import statistics
from functools import partial
from typing import Callable, Mapping, Sequence

from .cost_claims import ablation, efficiency
from .stats import holm, paired
from .tables import label
from .verdicts import ORDER, Claim, combined, common_seeds, effect_text, interval, missing, per_seed, test_text

PAIRS = (("attention", "linear"), ("attention", "nonlinear"), ("linear", "nonlinear"))
# Table 2 of the paper (CLIP ViT-B/32), in percent.
TABLE2 = {"absolute": {"attention": 78.37, "linear": 76.26, "nonlinear": 70.00},
          "normalized": {"attention": 87.42, "linear": 85.82, "nonlinear": 77.04}}


def mean_individual(r: Mapping) -> float:
    return 100 * statistics.fmean(r["individual"]["test"].values())


def addition_accuracy(metric: str, r: Mapping) -> float:
    """A seed's accuracy of the task sum, in percent, by `metric` (absolute or normalized)."""
    return 100 * r["addition"][metric]


def table2(results: Mapping) -> list[Claim]:
    """The three pairs on absolute and normalized accuracy, one Holm family of six."""
    paradigms = results["paradigms"]
    rows = [(m, a, b) for m in ("absolute", "normalized") for a, b in PAIRS]
    present = [(m, a, b) for m, a, b in rows if a in paradigms and b in paradigms]
    tests = holm([per_seed(paradigms, a, b, partial(addition_accuracy, m), common_seeds(results, (a, b)))
                  for m, a, b in present])
    found = dict(zip(present, tests))
    out = []
    for m, a, b in rows:
        name = f"Table 2, {m}: {label(a)} > {label(b)}"
        paper = f"{TABLE2[m][a]:.2f} vs {TABLE2[m][b]:.2f}"
        if (m, a, b) not in found:
            out.append(missing(name, paper))
            continue
        t = found[(m, a, b)]
        out.append(Claim(name, paper, interval(t), test_text(t, "seeds", f"{len(tests)} Table 2 tests"),
                         effect_text(t, TABLE2[m][a] - TABLE2[m][b]), t.verdict))
    return out


def advantage(results: Mapping) -> Claim:
    """Figures 5 and 7: attention-only gives up less individual accuracy to non-linear than NTK does, i.e. its
    individual models are more accurate than NTK's, seed by seed."""
    name = "Figures 5 and 7: smaller non-linear advantage for attention-only than NTK"
    paper = "attention-only's individual models nearer non-linear's"
    paradigms = results["paradigms"]
    if any(p not in paradigms for p in ORDER):
        return missing(name, paper)
    t = per_seed(paradigms, "attention", "linear", mean_individual, common_seeds(results, ORDER))
    return Claim(name, paper, "advantage NTK − attention-only: " + interval(t), test_text(t, "seeds"),
                 effect_text(t, None), t.verdict)


def kernel(results: Mapping) -> Claim:
    name = "Figure 3: attention-only nearer its post-hoc linearization than non-linear"
    paper = "attention-only's points nearer the diagonal"
    k = (results.get("analysis") or {}).get("kernel") or {}
    if "attention" not in k or "nonlinear" not in k:
        return missing(name, paper)
    tasks = [t for t in k["nonlinear"]["per_task"] if t in k["attention"]["per_task"]]

    def gap(p: str, t: str) -> float:
        row = k[p]["per_task"][t]
        return 100 * abs(row["posthoc_linear"] - row["model"])

    test = paired(gap("nonlinear", t) - gap("attention", t) for t in tasks)
    return Claim(name, paper, "|gap| non-linear − attention-only: " + interval(test),
                 test_text(test, "tasks (first seed)"), effect_text(test, None), test.verdict)


def against_others(name: str, paper: str, diffs: Callable[[str], Sequence[float]], units: str,
                   unit: str = " pp", digits: int = 2, what: str = "") -> Claim:
    """Attention-only against NTK and against non-linear; `diffs(other)` > 0 is the paper's direction, and
    `what` names the measure before the intervals."""
    tests = {o: paired(diffs(o)) for o in ("linear", "nonlinear")}
    ours = what + "; ".join(f"vs {label(o)}: {interval(t, unit, digits)}" for o, t in tests.items())
    how = "; ".join(f"vs {label(o)}: {test_text(t, units)}" for o, t in tests.items())
    return Claim(name, paper, ours, how, "no number in the paper", combined(list(tests.values())))


def low_xi_area(results: Mapping, measure: str, figure: str) -> Claim:
    name = f"{figure}: widest low-ξ area for attention-only ({measure})"
    paper = "attention-only has the largest low-error region"
    pairs = [p for p in ((results.get("analysis") or {}).get("disentangle") or {}).values()
             if all(q in p for q in ORDER)]
    if not pairs:
        return missing(name, paper)
    return against_others(name, paper, lambda o: [100 * (p["attention"]["low_area"][measure] -
                                                          p[o]["low_area"][measure]) for p in pairs],
                          "task pairs (first seed)")


def robustness(results: Mapping) -> Claim:
    """Figure 9: ahead over the α grid. Per seed, the mean over α of attention-only's minus the other's
    absolute accuracy on the recorded curve: test where the run scored test at every α, else validation."""
    paradigms = results["paradigms"]
    name = "Figure 9: attention-only ahead across the range of α"
    paper = "attention-only above both at most α"
    if any(p not in paradigms for p in ORDER):
        return missing(name, paper)
    seeds = common_seeds(results, ORDER)
    first = paradigms["attention"]["seeds"][seeds[0]]["addition"]["curve"]
    split = "test" if all("test_abs" in v for v in first.values()) else "val"

    def area(o: str) -> list[float]:
        out = []
        for s in seeds:
            mine = paradigms["attention"]["seeds"][s]["addition"]["curve"]
            theirs = paradigms[o]["seeds"][s]["addition"]["curve"]
            alphas = [a for a in mine if a in theirs and float(a) > 0]
            out.append(100 * statistics.fmean(mine[a][f"{split}_abs"] - theirs[a][f"{split}_abs"] for a in alphas))
        return out

    return against_others(name, paper, area, f"seeds; mean over α > 0 of the {split} curve",
                          what=f"{'test' if split == 'test' else 'validation'} curve, ")


def cosine(results: Mapping) -> Claim:
    name = "Figure 10: task vectors nearer orthogonal for attention-only"
    paper = "attention-only's off-diagonal cosines lowest"
    sim = (results.get("analysis") or {}).get("similarity") or {}
    if any(p not in sim for p in ORDER):
        return missing(name, paper)
    n = len(sim["attention"]["matrix"])

    def off(p: str) -> list[float]:
        m = sim[p]["matrix"]
        return [abs(m[i][j]) for i in range(n) for j in range(i + 1, n)]

    return against_others(name, paper, lambda o: [a - b for a, b in zip(off(o), off("attention"))],
                          "task pairs (first seed)", unit="", digits=3, what="|cos| other − attention-only: ")


def paper_claims(results: Mapping) -> list[Claim]:
    return [*table2(results), advantage(results), kernel(results),
            low_xi_area(results, "representation", "Figures 6 and 8"),
            low_xi_area(results, "prediction", "Figures 6 and 8"),
            robustness(results), cosine(results), *efficiency(results), *ablation(results),
            missing("Table 3: the ordering on Flan-T5 over GLUE", "ours > NTK > non-linear",
                     "not measured (no Flan-T5 weights or GLUE offline)")]
