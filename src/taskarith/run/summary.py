"""Mean and std over seeds of a paradigm's per-seed results: a pure function the run and the ablation share."""

from __future__ import annotations

import numpy as np


def _mean_std(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def summarize(seeds: dict[str, dict], tasks: list[str]) -> dict:
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


def _merge_summary(runs: list[dict]) -> dict:
    """Mean and std over seeds of a merge method's accuracies; a method not defined for the paradigm says so."""
    if "not_applicable" in runs[0]:
        return {"not_applicable": runs[0]["not_applicable"]}
    return {k: _mean_std([r[k] for r in runs]) for k in ("absolute", "normalized")}
