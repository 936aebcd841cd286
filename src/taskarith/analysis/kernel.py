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
                heads: Mapping[str, torch.Tensor]) -> dict:
    """Test accuracy of f(θ0 + τ_t) and of f_lin(θ0 + τ_t), task by task."""
    per_task = {}
    for task, tv in vectors.items():
        model = accuracies(family, [tv], [[1.0]], evalsets[task], heads[task])[0]
        linear = accuracies(family, [posthoc_linear(tv)], [[1.0]], evalsets[task], heads[task])[0]
        per_task[task] = {"model": float(model), "posthoc_linear": float(linear)}
    return {"per_task": per_task, "mean_gap": kernel_gap(per_task)}


def kernel(exp, first: Mapping[str, Mapping[str, TaskVector]], log=print) -> dict:
    """The kernel test for every non-linearly trained paradigm of the run, on the test splits."""
    out = {}
    for paradigm in (p for p in NONLINEAR_PARADIGMS if p in first):
        log(f"kernel test: {paradigm}")
        tests = {t: exp.evalsets[t]["test"] for t in first[paradigm]}
        out[paradigm] = kernel_test(exp.family, first[paradigm], tests, exp.heads)
    return out
