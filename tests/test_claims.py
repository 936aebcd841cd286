"""The verdicts are paired tests: every interval, p-value and verdict checked against hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from taskarith.report.checks import protocol_checks
from taskarith.report.claims import paper_claims
from taskarith.report.stats import FAILS, HOLDS, MISSING, NO_TEST, UNRESOLVED, holm, paired

TASKS = ("a", "b", "c")
ORDER = ("nonlinear", "linear", "attention")
T975 = {2: 4.302652729911275, 3: 3.182446305284263, 7: 2.364624251010299}  # t quantiles, df: value


def test_paired_interval_matches_the_hand_computation():
    t = paired([1.0, 2.0, 3.0])  # mean 2, sd 1 (ddof 1), se 1/sqrt(3)
    half = T975[2] / math.sqrt(3)
    assert (t.n, t.mean, t.sd) == (3, 2.0, 1.0)
    assert t.low == pytest.approx(2 - half) and t.high == pytest.approx(2 + half)
    assert t.p == pytest.approx(0.07417990022744847)  # two-sided, t = 2·sqrt(3) on 2 df
    assert t.verdict == UNRESOLVED  # the interval holds 0
    assert t.excludes(5.0) and not t.excludes(0.0)


def test_signs_give_holds_and_does_not_hold():
    assert paired([2.0, 2.1, 1.9, 2.2]).verdict == HOLDS
    assert paired([-2.0, -2.1, -1.9, -2.2]).verdict == FAILS


def test_one_value_or_no_spread_allows_no_test():
    assert paired([3.0]).verdict == NO_TEST
    assert paired([1.0, 1.0, 1.0]).verdict == NO_TEST
    with pytest.raises(ValueError):
        paired([])


def test_a_true_gap_resolves_once_seeds_are_added():
    three = [1.0, 2.5, 0.2]
    eight = three + [1.2, 1.8, 0.9, 1.5, 1.1]
    assert paired(three).verdict == UNRESOLVED
    t = paired(eight)
    assert t.verdict == HOLDS
    sd = math.sqrt(sum((x - sum(eight) / 8) ** 2 for x in eight) / 7)
    assert t.low == pytest.approx(sum(eight) / 8 - T975[7] * sd / math.sqrt(8))


def test_holm_multiplies_by_the_tests_left_and_stays_monotone():
    tests = holm([paired(d) for d in ([1.0, 1.1, 0.9], [1.0, 3.0, 0.5], [0.5, 1.0, 0.1])])
    p = sorted(t.p for t in tests)
    by_raw = sorted(tests, key=lambda t: t.p)
    assert by_raw[0].p_adjusted == pytest.approx(min(1, 3 * p[0]))
    assert by_raw[1].p_adjusted == pytest.approx(max(3 * p[0], min(1, 2 * p[1])))
    assert by_raw[2].p_adjusted == pytest.approx(max(by_raw[1].p_adjusted, p[2]))
    # significant alone (p < 0.05), not after Holm over three
    alone = paired([1.0, 1.2, 0.9, 1.1])
    family = holm([alone, paired([0.1, -0.1, 0.2, 0.0]), paired([0.3, -0.2, 0.1, 0.4])])
    assert alone.p < 0.05 and (alone.p_adjusted < 0.05) == (3 * alone.p < 0.05)
    assert family[0].p_adjusted == pytest.approx(min(1.0, 3 * alone.p))


# --- the claims table on a results dict with known numbers ----------------------------------------

def seed_record(absolute: float, normalized: float, individual: float, step: float, memory: int,
                curve_shift: float) -> dict:
    curve = {f"{a:g}": {"val_abs": 0.6 + a * 0.1 + curve_shift, "val_norm": 0.7} for a in (0, 0.5, 1.0)}
    return {"individual": {"test": dict.fromkeys(TASKS, individual)},
            "addition": {"absolute": absolute, "normalized": normalized, "alpha": 0.5, "alpha_ties": 1,
                         "curve": curve, "test": dict.fromkeys(TASKS, absolute)},
            "negation": {t: {"control": 0.96, "pretrained_control": 1.0} for t in TASKS},
            "training": {t: {"seconds_per_step": step * 2, "median_seconds_per_step": step,
                             "memory_increase_bytes": memory} for t in TASKS}}


def paradigm(base: float, gaps: list[float], count: int, step: float, memory: int) -> dict:
    seeds = {str(i): seed_record(base + g, base + 0.1 + g, 0.9 + g / 10, step * (1 + i / 100), memory, g)
             for i, g in enumerate(gaps)}
    return {"selection": {"count": count, "total": 1000, "share": count / 1000}, "seeds": seeds}


def make_results(att_gaps: list[float]) -> dict:
    n = len(att_gaps)
    return {
        "config": {"eval": {"negation_keep": 0.95, "alphas": [0, 0.5, 1.0]}},
        "pretrained": {"test": dict.fromkeys(TASKS, 0.5)},
        "paradigms": {"nonlinear": paradigm(0.70, [0.0] * n, 1000, 1.0, 100),
                      "linear": paradigm(0.70, [0.01] * n, 1000, 2.0, 150),
                      "attention": paradigm(0.70, att_gaps, 250, 0.5, 40)},
        "analysis": {
            "kernel": {"nonlinear": {"per_task": {t: {"model": 0.9, "posthoc_linear": 0.6 + d}
                                                  for t, d in zip(TASKS, (0.0, 0.02, 0.05))}},
                       "attention": {"per_task": {t: {"model": 0.9, "posthoc_linear": 0.88} for t in TASKS}}},
            "disentangle": {"a+b": {p: {"low_area": {"representation": v, "prediction": v}}
                                    for p, v in zip(ORDER, (0.1, 0.2, 0.6))}},
            "similarity": {p: {"matrix": [[1.0, c, -c], [c, 1.0, c], [-c, c, 1.0]]}
                           for p, c in zip(ORDER, (0.05, 0.04, 0.01))},
        },
    }


def rows(results: dict) -> dict:
    return {c.claim: c for c in paper_claims(results)}


def test_table2_rows_are_paired_over_seeds_with_holm():
    gaps = [0.05, 0.06, 0.04, 0.05, 0.055]  # attention ahead of non-linear by 5 pp, of NTK by 4 pp
    r = rows(make_results(gaps))
    row = r["Table 2, absolute: Attention-only > Non-linear"]
    expected = paired([100 * g for g in gaps])
    assert row.ours.startswith(f"{expected.mean:+.2f} pp [{expected.low:+.2f}, {expected.high:+.2f}] (n = 5)")
    assert "Holm over 6 Table 2 tests" in row.test and row.verdict == HOLDS
    assert row.paper_effect == "+8.37 pp excluded"
    # NTK is exactly 1 pp above non-linear on every seed: no spread, no test
    assert r["Table 2, absolute: NTK linearization > Non-linear"].verdict == NO_TEST


def test_table2_unresolved_then_holds_as_seeds_are_added():
    few = rows(make_results([0.03, -0.01, 0.02]))["Table 2, absolute: Attention-only > Non-linear"]
    many = rows(make_results([0.03, -0.01, 0.02, 0.02, 0.025, 0.015, 0.03, 0.02]))[
        "Table 2, absolute: Attention-only > Non-linear"]
    assert few.verdict == UNRESOLVED and many.verdict == HOLDS


def test_against_the_paper_is_does_not_hold():
    r = rows(make_results([-0.05, -0.06, -0.04, -0.05]))
    assert r["Table 2, absolute: Attention-only > Non-linear"].verdict == FAILS


def test_first_seed_analyses_are_tested_over_their_units():
    r = rows(make_results([0.05, 0.06, 0.04]))
    kernel = r["Figure 3: attention-only nearer its post-hoc linearization than non-linear"]
    expected = paired([100 * (0.3 - d) - 2.0 for d in (0.0, 0.02, 0.05)])
    assert "(n = 3)" in kernel.ours and f"{expected.mean:+.2f} pp" in kernel.ours
    assert kernel.verdict == HOLDS
    # one task pair: no test; the cosine over the three pairs of three tasks: attention's |cos| is lowest
    assert r["Figures 6 and 8: widest low-ξ area for attention-only (representation)"].verdict == NO_TEST
    cos = r["Figure 10: task vectors nearer orthogonal for attention-only"]
    assert "(n = 3)" in cos.ours and cos.verdict == NO_TEST  # equal |cos| on every pair: no spread
    assert r["Table 3: the ordering on Flan-T5 over GLUE"].verdict == MISSING


def test_robustness_reads_the_validation_curve_and_says_so():
    r = rows(make_results([0.05, 0.06, 0.04]))
    row = r["Figure 9: attention-only ahead across the range of α"]
    assert row.ours.startswith("validation curve") and row.verdict == HOLDS


def test_table4_counts_and_step_ratios():
    r = rows(make_results([0.05, 0.06, 0.04]))
    assert r["Table 4: fewer trainable parameters for attention-only"].verdict == HOLDS
    held = r["Table 4: NTK holds about twice the parameters (θ0 and τ)"]
    assert "(2.00×)" in held.ours and held.verdict == HOLDS
    ntk = r["Table 4: NTK trains slower than non-linear"]
    assert ntk.ours.startswith("step-time ratio 2.00×") and "median step" in ntk.test
    assert ntk.paper_effect.startswith("2.32×")


def test_ablation_rows_are_one_holm_family():
    res = make_results([0.05, 0.06, 0.04])
    base = res["paradigms"]["attention"]
    res["analysis"]["ablation"] = {
        "attention": base,
        "attention+bias": paradigm(0.70, [0.04, 0.05, 0.035], 300, 0.5, 40),
        "attention+mlp": paradigm(0.70, [0.06, 0.08, 0.05], 600, 0.5, 40),
    }
    r = rows(res)
    assert "Holm over 2 Table 5 tests" in r["Table 5: attention weights alone > attention+bias"].test
    assert r["Table 5: attention weights alone > attention+mlp"].verdict in (FAILS, UNRESOLVED)
    assert r["Table 5: attention weights alone > attention+mlp+bias"].verdict == MISSING


def test_protocol_checks_are_their_own_section():
    checks = {c.claim: c for c in protocol_checks(make_results([0.05, 0.06, 0.04]))}
    assert checks["Negation keeps the control at ≥ 95% on test, Attention-only"].verdict == "passes"
    assert "at the top of the grid in 0 of 9 searched" in checks["α inside its grid"].ours
    edge = make_results([0.05, 0.06, 0.04])
    edge["paradigms"]["linear"]["seeds"]["1"]["addition"]["alpha"] = 1.0
    edge["paradigms"]["linear"]["seeds"]["1"]["merges"] = {"ties": {"alpha": 1.0, "curve": {"0.5": {}, "1": {}}},
                                                           "adamerging": {"alpha": 1.0, "curve": {"1": {}}}}
    row = {c.claim: c for c in protocol_checks(edge)}["α inside its grid"]
    assert "2 of 10 searched" in row.ours and row.verdict == "note"  # AdaMerging's one α is not searched
    gain = checks["Task addition gains over zero-shot, Attention-only"]
    assert gain.verdict == HOLDS and "(n = 3)" in gain.ours
    assert checks["Ours: attention-only's fine-tune memory below non-linear's"].verdict == NO_TEST
    assert not any("Negation" in c.claim for c in paper_claims(make_results([0.05, 0.06, 0.04])))


def test_alpha_choice_loss_reads_the_test_curve():
    from taskarith.report.checks import alpha_choice_loss

    curve = {"0": {"test_abs": 0.5}, "0.5": {"test_abs": 0.8}, "1": {"test_abs": 0.8}}
    assert alpha_choice_loss(curve, 1.0) == (0.5, 0.0)  # ties go to the smallest α
    best, lost = alpha_choice_loss(curve, 0.0)
    assert best == 0.5 and lost == pytest.approx(30.0)
    res = make_results([0.05, 0.06, 0.04])
    for r in res["paradigms"]["attention"]["seeds"].values():
        for point in r["addition"]["curve"].values():
            point["test_abs"] = point["val_abs"]
    res["tasks"] = {t: {"sizes": {"val": 80}} for t in TASKS}
    checks = {c.claim: c for c in protocol_checks(res)}
    row = checks["α chosen on validation near the test-best α, Attention-only"]
    assert "at most 80 validation examples" in row.test and row.verdict == "note"  # α 0.5, test-best 1
