"""The non-linear advantage (the paper's Figure 5): how much individual test accuracy a paradigm gives up
against plain non-linear fine-tuning, task by task, from the accuracies the run already measured."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..results_record import Advantage, ParadigmEntry


def nonlinear_advantage(paradigms: Mapping[str, ParadigmEntry]) -> dict[str, Advantage]:
    """{paradigm: {"per_task": {task: acc_nonlinear − acc_paradigm}, "mean": ...}} for every other paradigm.

    Accuracies are the per-task individual test accuracies averaged over seeds (the entries' summaries);
    a positive advantage means non-linear fine-tuning is better on that task.
    """
    if "nonlinear" not in paradigms:
        return {}
    reference = paradigms["nonlinear"]["summary"]["per_task"]
    out: dict[str, Advantage] = {}
    for name, entry in paradigms.items():
        if name == "nonlinear":
            continue
        other = entry["summary"]["per_task"]
        per_task = {t: reference[t]["individual"]["mean"] - other[t]["individual"]["mean"]
                    for t in reference if t in other}
        out[name] = {"per_task": per_task, "mean": float(np.mean(list(per_task.values())))}
    return out
