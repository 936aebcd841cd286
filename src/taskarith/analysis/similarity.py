"""Task-vector similarity (the paper's Figure 10): cosine between every pair, over shared parameters."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..vectors import TaskVector


def cosine_matrix(vectors: Sequence[TaskVector]) -> np.ndarray:
    n = len(vectors)
    m = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            m[i, j] = m[j, i] = vectors[i].cosine(vectors[j])
    return m


def mean_off_diagonal(m: np.ndarray) -> float:
    n = len(m)
    return float((m.sum() - np.trace(m)) / (n * n - n)) if n > 1 else float("nan")


def similarity(vectors: dict[str, TaskVector]) -> dict:
    m = cosine_matrix(list(vectors.values()))
    return {"tasks": list(vectors), "matrix": m.round(6).tolist(), "mean_off_diagonal": mean_off_diagonal(m)}
