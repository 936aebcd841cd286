"""Shared set-up for the benchmarks: the embedded model, real evaluation texts, synthetic task vectors.

Evaluation cost does not depend on what a task vector holds, so the benchmarks use random vectors of
the right shapes and scale rather than fine-tuning first.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from taskarith.data import SplitSpec, load_task  # noqa: E402
from taskarith.training.selection import select  # noqa: E402
from taskarith.models import TextEncoder  # noqa: E402
from taskarith.models.heads import zero_shot_head  # noqa: E402
from taskarith.groundwork.resources import keep_freed_memory  # noqa: E402
from taskarith.vectors import TaskVector  # noqa: E402


def setup_threads(keep_memory: bool = True) -> None:
    """The process settings the CLI uses; `keep_memory=False` leaves glibc's defaults, for comparison."""
    torch.set_flush_denormal(True)
    if keep_memory:
        keep_freed_memory()
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()  # weight-loading bars would bury the figures


def model(max_length: int = 64) -> TextEncoder:
    return TextEncoder(max_length=max_length)


def task_split(name: str, n: int):
    data = load_task(name, SplitSpec(caps={"test": n}))
    return data.test.inputs, data.test.labels, data.class_names, data.templates


def head_for(model: TextEncoder, class_names, templates) -> torch.Tensor:
    return zero_shot_head(model, class_names, templates)


def random_vector(model: TextEncoder, paradigm: str, task: str, seed: int, scale: float = 1e-3) -> TaskVector:
    """A task vector of the preset's shapes, each tensor scaled to `scale` × the weight's std."""
    names = select(model.net, "attention" if paradigm == "attention" else "full").names
    params = model.named_weights()
    gen = torch.Generator().manual_seed(seed)
    tensors = {n: torch.randn(params[n].shape, generator=gen) * scale * (params[n].detach().std() + 1e-8)
               for n in names}
    meta = {"paradigm": paradigm, "task": task, "base_model": model.model_id,
            "base_hash": model.fingerprint(names)}
    return TaskVector(tensors, meta)


def timed(fn: Callable[[], object], repeats: int = 1) -> tuple[float, object]:
    """Median seconds over `repeats` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out
