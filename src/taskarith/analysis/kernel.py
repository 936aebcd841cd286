"""The kernel-behaviour test (the paper's §3.2, Figure 3).

A task vector τ trained non-linearly is also applied to the post-hoc linearized model
f_lin(x; θ0 + τ) = f(x; θ0) + J f(x; θ0)·τ. Where the two accuracies agree, fine-tuning stayed in the
kernel regime; a large gap means the trained model relies on non-linear terms the tangent misses.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..evaluate import EvalSet, accuracies
from ..models.base import Family
from ..vectors import TaskVector

# Only vectors trained in place have a post-hoc linearization to compare with.
NONLINEAR_PARADIGMS = ("nonlinear", "attention")


def posthoc_linear(tv: TaskVector) -> TaskVector:
    """The same τ, flagged linear so that it applies to the linearized model at θ0."""
    return TaskVector(tv.tensors, {**tv.meta, "paradigm": "linear", "posthoc_of": tv.meta["paradigm"]})


def kernel_gap(per_task: Mapping[str, Mapping[str, float]]) -> float:
    """Mean over tasks of posthoc_linear − model accuracy (negative: linearization loses accuracy)."""
    return float(np.mean([r["posthoc_linear"] - r["model"] for r in per_task.values()]))


def kernel_test(family: Family, vectors: Mapping[str, TaskVector], evalsets: Mapping[str, EvalSet],
                heads: Mapping[str, torch.Tensor], model_accuracy: Mapping[str, float] | None = None) -> dict:
    """Test accuracy of f(θ0 + τ_t) and of f_lin(θ0 + τ_t), task by task.

    `model_accuracy` is f(θ0 + τ_t)'s test accuracy where the run already scored it (its individual model)."""
    per_task = {}
    for task, tv in vectors.items():
        if model_accuracy is not None and task in model_accuracy:
            model = model_accuracy[task]
        else:
            model = accuracies(family, [tv], [[1.0]], evalsets[task], heads[task])[0]
        linear = accuracies(family, [posthoc_linear(tv)], [[1.0]], evalsets[task], heads[task])[0]
        per_task[task] = {"model": float(model), "posthoc_linear": float(linear)}
    return {"per_task": per_task, "mean_gap": kernel_gap(per_task)}


def kernel(exp, first: Mapping[str, Mapping[str, TaskVector]],
           individual: Mapping[str, Mapping[str, float]] | None = None, log=print) -> dict:
    """The kernel test for every non-linearly trained paradigm of the run, on the test splits.

    `individual` maps a paradigm to its first seed's individual test accuracies, reused when given."""
    out = {}
    for paradigm in (p for p in NONLINEAR_PARADIGMS if p in first):
        log(f"kernel test: {paradigm}")
        tests = {t: exp.evalsets[t]["test"] for t in first[paradigm]}
        out[paradigm] = kernel_test(exp.family, first[paradigm], tests, exp.heads,
                                    (individual or {}).get(paradigm))
    return out
