"""A learning rate per paradigm, chosen on validation (never on test).

The paper fine-tunes every paradigm at one learning rate. At a small step budget a paradigm that trains
fewer weights, or trains them through a linearization, can under-fit at the rate that suits full
fine-tuning; `lr_search` measures that. Each candidate rate fine-tunes seed 0 on every task, and the rate
with the best mean individual validation accuracy becomes that paradigm's rate for every seed. Ties go to
train.lr, the paper's single rate. Seed 0's vectors at the chosen rate are the ones the run then uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..results_record import LrSearch
from .experiment import Experiment
from .finetunes import Unit, trained_vector


def choose_lr(validation: Mapping[float, float], default: float) -> float:
    """The rate with the best validation score; a tie keeps `default`, else goes to the smallest tied rate."""
    best = max(validation.values())
    tied = sorted(lr for lr, score in validation.items() if np.isclose(score, best, rtol=0, atol=1e-12))
    return default if default in tied else tied[0]


def search_learning_rates(exp: Experiment) -> dict[str, LrSearch]:
    """Each paradigm's mean individual validation accuracy at every candidate rate, and the rate chosen."""
    out: dict[str, LrSearch] = {}
    for paradigm in exp.cfg.paradigms:
        validation = {}
        for lr in exp.cfg.lr_search:
            scores = []
            for t in exp.tasks:
                tv = trained_vector(exp, Unit(0, paradigm, t, lr=lr))
                scores.append(float(exp.scores([tv], [[1.0]], [(t, "val")])[(t, "val")][0]))
            validation[lr] = float(np.mean(scores))
            exp.log(f"lr search: {paradigm} at {lr:g}: mean individual validation accuracy {validation[lr]:.1%}")
        chosen = choose_lr(validation, exp.cfg.train.lr)
        exp.log(f"lr search: {paradigm} trains at {chosen:g}")
        out[paradigm] = {"validation": {f"{lr:g}": v for lr, v in validation.items()}, "chosen": chosen}
    return out


@dataclass(frozen=True)
class RunRates:
    """Each paradigm's rate for the run, the search's results.json record (None without lr_search) and its
    seconds: found once, where the candidates were trained, and handed to the rest of the run."""

    by_paradigm: dict[str, float]
    record: dict[str, LrSearch] | None = None
    seconds: float = 0.0


def run_rates(exp: Experiment) -> RunRates:
    """train.lr for every paradigm, or the rates lr_search chooses (training or reusing its candidates)."""
    if not exp.cfg.lr_search:
        return RunRates({p: exp.cfg.train.lr for p in exp.cfg.paradigms})
    started = time.perf_counter()
    record = search_learning_rates(exp)  # seed 0's vectors at each chosen rate are cached
    return RunRates({p: record[p]["chosen"] for p in exp.cfg.paradigms}, record, time.perf_counter() - started)
