"""A claim's row and the words that give its test: what every claim and check of the report shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from .stats import FAILS, HOLDS, MISSING, NO_TEST, UNRESOLVED, Paired, paired

ORDER = ("attention", "linear", "nonlinear")  # the paper's ranking, best first


@dataclass(frozen=True)
class Claim:
    claim: str
    paper: str
    ours: str
    test: str  # how the verdict was reached: n, units, p-value, correction
    paper_effect: str  # whether the paper's own effect lies inside our interval
    verdict: str


def missing(claim: str, paper: str, why: str = "—") -> Claim:
    return Claim(claim, paper, why, "—", "—", MISSING)


def interval(t: Paired, unit: str = " pp", digits: int = 2) -> str:
    if t.n < 2 or t.low != t.low:
        return f"{t.mean:+.{digits}f}{unit} (n = {t.n})"
    return f"{t.mean:+.{digits}f}{unit} [{t.low:+.{digits}f}, {t.high:+.{digits}f}] (n = {t.n})"


def test_text(t: Paired, units: str, family: str = "") -> str:
    if t.p != t.p:
        return f"paired over {units}; one value or no spread"
    adjusted = f", Holm over {family}: {t.p_adjusted:.3g}" if family else ""
    return f"paired over {units}; p = {t.p:.3g}{adjusted}"


def effect_text(t: Paired, effect: float | None, unit: str = " pp") -> str:
    if effect is None:
        return "no number in the paper"
    if t.low != t.low:
        return f"{effect:+.2f}{unit}: no interval"
    return f"{effect:+.2f}{unit} {'excluded' if t.excludes(effect) else 'inside'}"


def combined(tests: Sequence[Paired]) -> str:
    verdicts = [t.verdict for t in tests]
    for v in (MISSING, NO_TEST, FAILS, UNRESOLVED):
        if v in verdicts:
            return v
    return HOLDS


def common_seeds(results: Mapping, names: Sequence[str], entries: Mapping | None = None) -> list[str]:
    """Seeds every named entry measured, in order."""
    entries = results["paradigms"] if entries is None else entries
    keys = [set(entries[n]["seeds"]) for n in names]
    return sorted(set.intersection(*keys), key=int) if keys else []


def per_seed(entries: Mapping, a: str, b: str, value: Callable[[Mapping], float], seeds: Sequence[str]) -> Paired:
    return paired(value(entries[a]["seeds"][s]) - value(entries[b]["seeds"][s]) for s in seeds)
