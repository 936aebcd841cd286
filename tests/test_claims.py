"""The paper's claims, checked from a results dict with known numbers: every verdict, noise included."""

from __future__ import annotations

import math

import pytest

from taskarith.report.claims import (FAILS, FAILS_ONE, HOLDS, HOLDS_ONE, MISSING, NOISE, Stat, better, combine,
                                     paper_claims)

TASKS = ("a", "b")
ORDER = ("nonlinear", "linear", "attention")


def seed(absolute: float, normalized: float, individual: float, *, step: float, memory: int,
         control: float = 0.97) -> dict:
    return {
        "individual": {"test": {t: individual for t in TASKS}},
        "addition": {"absolute": absolute, "normalized": normalized, "alpha_ties": 1},
        "negation": {t: {"control": control, "pretrained_control": 1.0} for t in TASKS},
        "training": {t: {"seconds_per_step": step, "memory_increase_bytes": memory} for t in TASKS},
    }


def paradigm(values: list[tuple], count: int) -> dict:
    """values: per seed (absolute, normalized, individual, s/step, memory MiB, control kept)."""
    return {"selection": {"count": count, "total": 1000, "share": count / 1000},
            "seeds": {str(i): seed(a, n, ind, step=st, memory=m * 2**20, control=c)
                      for i, (a, n, ind, st, m, c) in enumerate(values)}}


def results(att_abs=(0.80, 0.82), lin_abs=(0.75, 0.77), nl_abs=(0.70, 0.72)) -> dict:
    return {
        "config": {"eval": {"negation_keep": 0.95}},
        "paradigms": {
            "nonlinear": paradigm([(nl_abs[0], 0.80, 0.95, 0.5, 1000, 0.97), (nl_abs[1], 0.81, 0.95, 0.5, 1002, 0.97)],
                                  1000),
            "linear": paradigm([(lin_abs[0], 0.85, 0.85, 0.8, 1500, 0.97), (lin_abs[1], 0.86, 0.85, 0.8, 1502, 0.97)],
                               1000),
            "attention": paradigm([(att_abs[0], 0.90, 0.90, 0.3, 700, 0.96), (att_abs[1], 0.91, 0.90, 0.3, 702, 0.98)],
                                  250),
        },
        "analysis": {
            "kernel": {"nonlinear": {"per_task": {t: {"model": 0.9, "posthoc_linear": 0.6} for t in TASKS}},
                       "attention": {"per_task": {t: {"model": 0.9, "posthoc_linear": 0.85} for t in TASKS}}},
            "disentangle": {"a+b": {p: {"low_area": {"representation": area, "prediction": area}}
                                    for p, area in zip(ORDER, (0.1, 0.2, 0.6))}},
            "similarity": {p: {"matrix": [[1.0, c], [c, 1.0]]} for p, c in zip(ORDER, (0.05, 0.04, 0.01))},
        },
    }


def verdicts(res: dict) -> dict[str, str]:
    return {c.claim: c.verdict for c in paper_claims(res)}


def test_better_holds_fails_and_noise():
    assert better(Stat(0.8, 0.01), Stat(0.7, 0.01)) == HOLDS
    assert better(Stat(0.7, 0.01), Stat(0.8, 0.01)) == FAILS
    # 0.02 apart, combined spread hypot(0.03, 0.04) = 0.05
    assert better(Stat(0.72, 0.03), Stat(0.70, 0.04)) == NOISE
    assert better(Stat(0.70, 0.04), Stat(0.72, 0.03)) == NOISE
    assert math.isclose(math.hypot(0.03, 0.04), 0.05)


def test_combine_takes_the_weakest_verdict():
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, NOISE]) == NOISE
    assert combine([NOISE, FAILS, HOLDS]) == FAILS
    assert combine([HOLDS, MISSING]) == MISSING


def test_every_claim_holds_on_numbers_that_follow_the_paper():
    v = verdicts(results())
    assert len(v) == 10
    # one disentanglement pair, and one cosine pair of two tasks: a direction without a spread
    single = {"Widest low-ξ area for attention-only (Figures 6 and 8)",
              "Task vectors nearer orthogonal for attention-only (Figure 10)"}
    assert {k for k, verdict in v.items() if verdict == HOLDS_ONE} == single, v
    assert {verdict for k, verdict in v.items() if k not in single} == {HOLDS}, v


def test_ordering_fails_when_nonlinear_is_best_on_absolute():
    v = verdicts(results(att_abs=(0.70, 0.72), nl_abs=(0.80, 0.82)))
    absolute = next(k for k in v if k.startswith("Table 2 ordering, absolute"))
    normalized = next(k for k in v if k.startswith("Table 2 ordering, normalized"))
    assert v[absolute] == FAILS
    assert v[normalized] == HOLDS


def test_ordering_within_noise_when_the_gap_is_smaller_than_the_seeds_spread():
    # attention 0.755 ± 0.045 against NTK 0.76 ± 0.01: 0.005 apart, spread 0.046
    v = verdicts(results(att_abs=(0.71, 0.80)))
    absolute = next(k for k in v if k.startswith("Table 2 ordering, absolute"))
    assert v[absolute] == NOISE


def test_efficiency_and_negation_rows_turn_with_the_numbers():
    res = results()
    for r in res["paradigms"]["attention"]["seeds"].values():
        for t in TASKS:
            r["training"][t]["memory_increase_bytes"] = 2000 * 2**20
            r["negation"][t]["control"] = 0.90
    v = verdicts(res)
    assert v["Lower fine-tuning memory (Table 4)"] == FAILS
    assert v["Negation keeps the control task at ≥ 95%"] == FAILS
    assert v["Faster steps (Table 4)"] == HOLDS


def test_analysis_rows_follow_the_first_seed_analyses():
    res = results()
    res["analysis"]["similarity"]["attention"]["matrix"] = [[1.0, 0.2], [0.2, 1.0]]
    res["analysis"]["kernel"]["attention"]["per_task"] = {t: {"model": 0.9, "posthoc_linear": 0.5} for t in TASKS}
    v = verdicts(res)
    assert v["Task vectors nearer orthogonal for attention-only (Figure 10)"] == FAILS_ONE
    assert v["Kernel test: attention-only nearer its post-hoc linearization (Figure 3)"] == FAILS


def test_missing_analyses_are_reported_as_not_measured():
    res = results()
    res["analysis"] = {}
    for r in res["paradigms"]["nonlinear"]["seeds"].values():
        for t in TASKS:
            del r["training"][t]["memory_increase_bytes"]
    v = verdicts(res)
    assert v["Kernel test: attention-only nearer its post-hoc linearization (Figure 3)"] == MISSING
    assert v["Widest low-ξ area for attention-only (Figures 6 and 8)"] == MISSING
    assert v["Lower fine-tuning memory (Table 4)"] == MISSING


@pytest.mark.parametrize("missing", ["linear", "attention"])
def test_orderings_need_all_three_paradigms(missing):
    res = results()
    del res["paradigms"][missing]
    v = verdicts(res)
    assert v["Table 2 ordering, absolute: attention-only > NTK > non-linear"] == MISSING


def test_one_value_has_no_spread_and_the_verdict_says_so():
    one = Stat.over([0.7])
    assert math.isnan(one.std)
    assert better(Stat.over([0.8]), one) == HOLDS_ONE
    assert better(one, Stat.over([0.8])) == FAILS_ONE
    assert better(one, one) == NOISE
    assert combine([HOLDS, HOLDS_ONE]) == HOLDS_ONE and combine([HOLDS_ONE, FAILS_ONE]) == FAILS_ONE
    assert better(Stat.over([0.8, 0.8]), Stat.over([0.7, 0.7])) == HOLDS  # two equal seeds: a spread of zero
