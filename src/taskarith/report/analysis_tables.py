"""Markdown tables of the first-seed analyses (similarity, kernel test, disentanglement) and the ablation.
Pure functions, no I/O; display-level arithmetic only."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .tables import label, over_seeds, paradigm_names, pct, table


def mean_abs_off_diagonal(matrix: Sequence[Sequence[float]]) -> float:
    n = len(matrix)
    return float(np.mean([abs(matrix[i][j]) for i in range(n) for j in range(n) if i != j]))


def similarity_table(similarity: Mapping) -> str:
    """Both statistics, named: the signed mean (cancellations included) and the mean |cos| the claims test."""
    rows = [[label(p), f"{similarity[p]['mean_off_diagonal']:.3f}",
             f"{mean_abs_off_diagonal(similarity[p]['matrix']):.3f}"] for p in paradigm_names(similarity)]
    return table(["Paradigm", "Mean off-diagonal cos (signed)", "Mean off-diagonal |cos|"], rows)


def kernel_model_accuracy(row: Mapping) -> float:
    # The analysis writes "model" (the kernel test also covers attention-only vectors); the schema's
    # example names it "nonlinear".
    return row["model"] if "model" in row else row["nonlinear"]


def kernel_table(kernel: Mapping) -> str:
    """Accuracy of each τ applied to the model it was trained on vs to the post-hoc linearized model."""
    rows = []
    for p in paradigm_names(kernel):
        per_task = kernel[p]["per_task"]
        rows += [[label(p), t, pct(kernel_model_accuracy(r)), pct(r["posthoc_linear"])]
                 for t, r in per_task.items()]
    return table(["Paradigm", "Task", "Model (%)", "Post-hoc linearized (%)"], rows, "llrr")


def kernel_gap_table(kernel: Mapping) -> str:
    rows = [[label(p), f"{100 * kernel[p]['mean_gap']:+.1f}"] for p in paradigm_names(kernel)]
    return table(["Paradigm", "Mean gap, post-hoc linearized − model (pp)"], rows)


def disentangle_paradigms(pair: Mapping) -> list[str]:
    return paradigm_names({k: v for k, v in pair.items() if k != "grid"})


def disentangle_table(pair: Mapping) -> str:
    """Share of the (α1, α2) grid with disentanglement error at most the pair's threshold."""
    rows = [[label(p), f"{100 * pair[p]['low_area']['representation']:.1f}",
             f"{100 * pair[p]['low_area']['prediction']:.1f}"] for p in disentangle_paradigms(pair)]
    return table(["Paradigm", "Low-error area, representation (%)", "Low-error area, prediction (%)"], rows)


def ablation_table(ablation: Mapping) -> str:
    """Table 5 analogue: which parameters to fine-tune; entries are shaped like a paradigm entry."""
    rows = []
    for preset, e in ablation.items():
        runs = list(e["seeds"].values())  # the ablation may run fewer seeds than the paradigms
        several = len(runs) > 1
        single = over_seeds([float(np.mean(list(r["individual"]["test"].values()))) for r in runs], several)
        rows.append([preset, single,
                     *(over_seeds([r["addition"][k] for r in runs], several) for k in ("absolute", "normalized"))])
    return table(["Fine-tuned parameters", "Single-task (%)", "Absolute (%)", "Normalized (%)"], rows)
