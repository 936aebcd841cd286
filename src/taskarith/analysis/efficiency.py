"""The efficiency table (the paper's Table 4), from what the fine-tuning runs measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..vectors import TaskVector


def efficiency(vectors: dict[str, TaskVector], paths: dict[str, Path]) -> dict:
    """Per paradigm: parameter counts from the selection, time and memory as measured while training."""
    first = next(iter(vectors.values()))
    training = [tv.meta["training"] for tv in vectors.values()]
    return {
        "total_parameters": first.meta["selection"]["total"],
        "trainable_parameters": first.meta["selection"]["count"],
        "trainable_share": first.meta["selection"]["share"],
        "peak_memory_bytes": int(max(t["peak_memory_bytes"] for t in training)),
        # the fine-tune's own memory: its peak above what the process held just before it started
        # None for vectors trained before it was measured: the report shows a dash, not a false zero
        "memory_increase_bytes": (None if any("memory_increase_bytes" not in t for t in training)
                                  else int(max(t["memory_increase_bytes"] for t in training))),
        "memory_kind": training[0]["memory_kind"],
        "seconds_per_step": float(np.mean([t["seconds_per_step"] for t in training])),
        "total_seconds": float(sum(t["seconds"] for t in training)),
        "vector_bytes": int(np.mean([paths[t].stat().st_size for t in vectors])),
    }
