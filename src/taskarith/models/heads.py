"""Zero-shot heads are computed once with the pre-trained model and cached on disk by its θ0 hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch

from ..atomic import save_safetensors
from ..errors import TaskarithError
from ..fetch import cache_dir
from ..tensor_files import read_safetensors
from .base import Model

_memory: dict[str, torch.Tensor] = {}


def head_key(model_hash: str, class_names: Sequence[str], templates: Sequence[str], family: str) -> str:
    record = json.dumps([family, model_hash, list(class_names), list(templates)])
    return hashlib.sha256(record.encode()).hexdigest()[:32]


def zero_shot_head(model: Model, class_names: Sequence[str], templates: Sequence[str],
                   folder: Path | None = None) -> torch.Tensor:
    """The frozen head for these classes; a change of model, classes or templates gives a new key."""
    key = head_key(model.fingerprint(), class_names, templates, type(model).__name__)
    if key in _memory:
        return _memory[key]
    path = (folder or cache_dir() / "heads") / f"{key}.safetensors"
    head = None
    if path.exists():
        try:
            head = read_safetensors(path)[0]["head"]
        except (TaskarithError, KeyError):
            head = None  # a damaged cache entry is recomputed, never trusted
    if head is None:
        head = model.zero_shot_head(class_names, templates)
        save_safetensors(path, {"head": head}, {"classes": json.dumps(list(class_names))})
    _memory[key] = head
    return head
