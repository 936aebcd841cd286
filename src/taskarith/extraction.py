"""Task vectors from checkpoints made anywhere: τ = θ_ft − θ0 between a base and a fine-tuned model of one
architecture, over the parameters a preset selects (`attention` keeps the Q, K, V and O weights of an
ordinary full fine-tune: its attention-only part, merged like any other task vector).

The vector carries what a trained one carries about its base (model, θ0 hash, preset), so it is checked
against its base wherever it is applied; instead of a training record it names its sources.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .version import __version__
from .groundwork.errors import TaskarithError
from .training.selection import select
from .models.base import Model
from .models.loading import expand_name
from .groundwork.tensor_files import check_safetensors
from .vectors import FLOAT_DTYPES, TaskVector


def load_weights(name: str, family: str, *, trust_pickle: bool = False) -> Model:
    """A model to extract from, on the CPU. max_length 1: extraction never tokenizes, and the least length
    passes any model's position check."""
    from .config import validate
    from .models import load_model

    settings = {"family": family, "name": name, "device": "cpu", "max_length": 1, "trust_pickle": trust_pickle}
    return load_model(validate({"model": settings}, name).model)


@dataclass(frozen=True)
class Extracted:
    """The vector, and the share of the fine-tune's change (squared norm) that the preset left out."""

    vector: TaskVector
    dropped_share: float
    changed_outside: int  # parameters outside the preset that the fine-tune changed


def _architecture(model: Model) -> str:
    config = getattr(model.net, "config", None)
    kind = getattr(config, "model_type", None)
    return f"{type(model.net).__name__}" + (f" ({kind})" if kind else "")


def stored_dtypes(source: str) -> set[str]:
    """The dtypes a local folder's safetensors files store its weights in (F32, F16, BF16, ...), read from
    their headers; empty where that is unknown (a hub id, a pickle): the family loads every model in one
    dtype, so this is where a half-precision fine-tune of a float32 base shows."""
    found: set[str] = set()
    source = expand_name(source)  # a model_id as the user wrote it: ~/models/base
    if not os.path.isdir(source):
        return found
    for path in sorted(Path(source).glob("*.safetensors")):
        found |= {entry.dtype for entry in check_safetensors(path).values()}
    return found


def check_same_architecture(base: Model, finetuned: Model) -> None:
    """One architecture, the same parameter names, shapes and dtypes, or one line naming both sides."""
    left, right = _architecture(base), _architecture(finetuned)
    if left != right:
        raise TaskarithError(f"base {base.model_id} is {left} but fine-tuned {finetuned.model_id} is {right}")
    stored = stored_dtypes(base.model_id), stored_dtypes(finetuned.model_id)
    if all(stored) and stored[0] != stored[1]:
        raise TaskarithError(f"weights stored as {', '.join(sorted(stored[0]))} in base {base.model_id} vs "
                             f"{', '.join(sorted(stored[1]))} in fine-tuned {finetuned.model_id}")
    b, f = base.named_weights(), finetuned.named_weights()
    for names, side, other in ((set(b) - set(f), finetuned.model_id, base.model_id),
                               (set(f) - set(b), base.model_id, finetuned.model_id)):
        if names:
            first = sorted(names)[0]
            raise TaskarithError(f"parameter {first!r} of {other} is missing from {side}"
                                 + (f" ({len(names) - 1} more)" if len(names) > 1 else ""))
    for name in b:
        if b[name].shape != f[name].shape:
            raise TaskarithError(f"{name}: shape {tuple(b[name].shape)} in base {base.model_id} vs "
                                 f"{tuple(f[name].shape)} in fine-tuned {finetuned.model_id}")
        if b[name].dtype != f[name].dtype:
            raise TaskarithError(f"{name}: dtype {b[name].dtype} in base {base.model_id} vs {f[name].dtype} in "
                                 f"fine-tuned {finetuned.model_id}")
        if b[name].dtype not in FLOAT_DTYPES:
            raise TaskarithError(f"{name}: dtype {b[name].dtype} is not a floating-point weight")


def extract_vector(base: Model, finetuned: Model, preset: str = "full", *, family: str = "",
                   task: str | None = None) -> Extracted:
    """τ = θ_ft − θ0 over `preset`'s parameters of the base, computed in float64 and kept in the weights'
    dtype; the change outside the preset is measured, not kept."""
    check_same_architecture(base, finetuned)
    selection = select(base.net, preset)
    b, f = base.named_weights(), finetuned.named_weights()
    chosen, kept, mass, outside = set(selection.names), {}, {}, []
    with torch.no_grad():
        for n in b:  # one parameter's float64 difference at a time
            delta = f[n].detach().double() - b[n].detach().double()
            mass[n] = float(delta.square().sum())
            if not math.isfinite(mass[n]):
                raise TaskarithError(f"{n}: the difference of {finetuned.model_id} and {base.model_id} is not "
                                     "finite (NaN or Inf in a weight)")
            if n in chosen:
                kept[n] = delta.to(b[n].dtype)
            elif mass[n] > 0:
                outside.append(n)
    total, dropped = math.fsum(mass.values()), math.fsum(mass[n] for n in outside)
    meta = {"base_model": base.model_id, "base_hash": base.fingerprint(list(kept)), "paradigm": "nonlinear",
            "preset": preset, "family": family, "task": task or finetuned.model_id,
            "selection": {k: v for k, v in selection.record().items() if k != "names"},
            "source": {"base": base.model_id, "finetuned": finetuned.model_id}, "taskarith_version": __version__}
    if not any(bool(t.any()) for t in kept.values()):
        raise TaskarithError(f"{finetuned.model_id} does not differ from {base.model_id} in the {preset!r} "
                             "parameters: the task vector would be zero")
    return Extracted(TaskVector(kept, meta), dropped / total if total else 0.0, len(outside))
