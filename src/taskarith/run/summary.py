"""Mean and std over seeds of a paradigm's per-seed results: a pure function the run and the ablation share."""

from __future__ import annotations

from typing import Mapping, Sequence, cast

import numpy as np

from ..results_record import MeanStd, MergeResult, MergeSummary, SeedResult, Summary, Sweep


def _mean_std(values: list[float]) -> MeanStd:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def summarize(seeds: Mapping[str, SeedResult], tasks: Sequence[str]) -> Summary:
    """Mean and std over seeds of the headline numbers and per-task accuracies."""
    runs = list(seeds.values())
    return {
        "absolute": _mean_std([r["addition"]["absolute"] for r in runs]),
        "normalized": _mean_std([r["addition"]["normalized"] for r in runs]),
        "individual": _mean_std([float(np.mean(list(r["individual"]["test"].values()))) for r in runs]),
        "per_task": {t: {"individual": _mean_std([r["individual"]["test"][t] for r in runs]),
                         "unified": _mean_std([r["addition"]["test"][t] for r in runs])} for t in tasks},
        "merges": {rule: _merge_summary([r["merges"][rule] for r in runs]) for rule in runs[0].get("merges", {})},
    }


def _merge_summary(runs: list[MergeResult]) -> MergeSummary:
    """Mean and std over seeds of a merge method's accuracies; a method not defined for the paradigm says so."""
    first = runs[0]
    if "not_applicable" in first:
        return {"not_applicable": first["not_applicable"]}
    sweeps = cast(list[Sweep], runs)  # every seed's: applicability is the paradigm's
    return {"absolute": _mean_std([r["absolute"] for r in sweeps]),
            "normalized": _mean_std([r["normalized"] for r in sweeps])}
