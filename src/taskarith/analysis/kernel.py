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
from ..models.base import Model
from ..vectors import TaskVector


def posthoc_linear(tv: TaskVector) -> TaskVector:
    """The same τ, flagged linear so that it applies to the linearized model at θ0."""
    return TaskVector(tv.tensors, {**tv.meta, "paradigm": "linear", "posthoc_of": tv.meta["paradigm"]})


def kernel_gap(per_task: Mapping[str, Mapping[str, float]]) -> float:
    """Mean over tasks of posthoc_linear − model accuracy (negative: linearization loses accuracy)."""
    return float(np.mean([r["posthoc_linear"] - r["model"] for r in per_task.values()]))


def kernel_test(model: Model, vectors: Mapping[str, TaskVector], evalsets: Mapping[str, EvalSet],
                heads: Mapping[str, torch.Tensor], model_accuracy: Mapping[str, float] | None = None) -> dict:
    """Test accuracy of f(θ0 + τ_t) and of f_lin(θ0 + τ_t), task by task.

    `model_accuracy` is f(θ0 + τ_t)'s test accuracy where the run already scored it (its individual model)."""
    per_task = {}
    for task, tv in vectors.items():
        if model_accuracy is not None and task in model_accuracy:
            fine_tuned = model_accuracy[task]
        else:
            fine_tuned = accuracies(model, [tv], [[1.0]], evalsets[task], heads[task])[0]
        linear = accuracies(model, [posthoc_linear(tv)], [[1.0]], evalsets[task], heads[task])[0]
        per_task[task] = {"model": float(fine_tuned), "posthoc_linear": float(linear)}
    return {"per_task": per_task, "mean_gap": kernel_gap(per_task)}
