"""The tests behind the report's verdicts: paired t-intervals and Holm's correction. Pure functions.

A claim that one method beats another is tested on paired differences (per seed, or per task or task pair
where one seed's analysis is measured on several matching units): the mean difference, its two-sided 95%
t-interval with the sample standard deviation (ddof 1) and n. A family of such tests (Table 2's three pairs on
two measures, say) is corrected with Holm's step-down method: each p-value is multiplied by the number of
tests not yet rejected, made monotone, and a verdict is drawn from the adjusted p-value and the sign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np
from scipy import stats as scipy_stats

LEVEL = 0.05  # two-sided: a 95% interval

HOLDS, FAILS, UNRESOLVED = "holds", "does not hold", "unresolved"
NO_TEST = "no test possible"  # one value, or differences without spread
MISSING = "not measured"


@dataclass(frozen=True)
class Paired:
    """The test of mean(differences) = 0 for differences oriented so that > 0 is the paper's direction."""

    n: int
    mean: float
    sd: float  # sample standard deviation, ddof 1; NaN below two values
    low: float  # the 95% t-interval of the mean
    high: float
    p: float  # two-sided; NaN when no test is possible
    p_adjusted: float  # after Holm over the test's family (the same as p for a test of its own)

    @property
    def verdict(self) -> str:
        if math.isnan(self.p_adjusted):
            return NO_TEST
        if self.p_adjusted >= LEVEL:
            return UNRESOLVED
        return HOLDS if self.mean > 0 else FAILS

    def excludes(self, value: float) -> bool:
        """Whether `value` lies outside the 95% interval."""
        return not math.isnan(self.low) and not self.low <= value <= self.high


def paired(differences: Iterable[float]) -> Paired:
    """The one-sample t-test and 95% t-interval of the differences' mean."""
    d = np.asarray(list(differences), dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no differences to test")
    mean = float(d.mean())
    if n < 2:
        return Paired(n, mean, math.nan, math.nan, math.nan, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # every difference equal up to rounding: no t-statistic exists
        return Paired(n, mean, 0.0, math.nan, math.nan, math.nan, math.nan)
    se = sd / math.sqrt(n)
    half = float(scipy_stats.t.ppf(1 - LEVEL / 2, n - 1)) * se
    p = float(2 * scipy_stats.t.sf(abs(mean) / se, n - 1))
    return Paired(n, mean, sd, mean - half, mean + half, p, p)


def holm(tests: Sequence[Paired]) -> list[Paired]:
    """The tests with Holm-adjusted p-values over the family; tests without a p-value are left out of it."""
    family = [i for i, t in enumerate(tests) if not math.isnan(t.p)]
    adjusted = list(tests)
    running = 0.0
    for rank, i in enumerate(sorted(family, key=lambda i: tests[i].p)):
        running = max(running, min(1.0, (len(family) - rank) * tests[i].p))
        adjusted[i] = replace(tests[i], p_adjusted=running)
    return adjusted

