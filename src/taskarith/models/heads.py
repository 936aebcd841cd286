"""Zero-shot heads are computed once with the pre-trained model and cached on disk by its θ0 hash.

A cached head is used only when it is what the model would compute: one finite row per class of the
model's width and dtype, saved for these very classes; anything else is recomputed, never trusted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from ..groundwork.atomic import save_safetensors
from ..groundwork.errors import TaskarithError
from ..groundwork.fetch import cache_dir
from ..groundwork.safety import parse_json
from ..groundwork.tensor_files import read_safetensors
from .base import Model

_memory: dict[str, torch.Tensor] = {}


def head_key(model_hash: str, class_names: Sequence[str], templates: Sequence[str], family: str) -> str:
    record = json.dumps([family, model_hash, list(class_names), list(templates)])
    return hashlib.sha256(record.encode()).hexdigest()[:32]


def _expected_kind(model: Model) -> tuple[torch.dtype, int | None]:
    """The dtype and row width of a fresh head: an encoder-decoder's head holds its targets' token ids (rows as
    wide as the longest target); every other family's holds float32 embeddings as wide as its representation."""
    config: Any = model.net.config  # a transformers config, which nn.Module's attribute types cannot know
    if getattr(config, "is_encoder_decoder", False):
        return torch.int64, None
    # a CLIP tower's representation is its projection, wider or narrower than its hidden layers
    return torch.float32, getattr(config, "projection_dim", None) or config.hidden_size


def _fits(head: object, model: Model, class_names: Sequence[str]) -> bool:
    dtype, width = _expected_kind(model)
    if not isinstance(head, torch.Tensor) or head.dtype != dtype or head.dim() != 2:
        return False
    rows, row_width = head.shape
    return (rows == len(class_names) and row_width > 0 and row_width == (width or row_width)
            and bool(torch.isfinite(head).all()))


def _saved_classes(meta: dict[str, str], path: Path) -> object:
    try:
        return parse_json(meta.get("classes", "null"), str(path))
    except TaskarithError:  # a damaged cache entry is computed again
        return None


def _cached(path: Path, model: Model, class_names: Sequence[str]) -> torch.Tensor | None:
    """The head saved at `path` if it is the one this model computes for these classes, else None."""
    if not path.exists():
        return None
    try:
        tensors, meta = read_safetensors(path)
    except TaskarithError:
        return None  # a damaged file is recomputed and replaced
    head = tensors.get("head")
    if (set(tensors) != {"head"} or _saved_classes(meta, path) != list(class_names)
            or not _fits(head, model, class_names)):
        return None
    return head


def zero_shot_head(model: Model, class_names: Sequence[str], templates: Sequence[str],
                   folder: Path | None = None) -> torch.Tensor:
    """The frozen head for these classes; a change of model, classes or templates gives a new key."""
    key = head_key(model.fingerprint(), class_names, templates, type(model).__name__)
    # checked again on each hit: a caller may have changed the tensor it was given in place
    if key in _memory and _fits(_memory[key], model, class_names):
        return _memory[key]
    path = (folder or cache_dir() / "heads") / f"{key}.safetensors"
    head = _cached(path, model, class_names)
    if head is None:
        head = model.zero_shot_head(class_names, templates)
        if head.is_floating_point() and not torch.isfinite(head).all():
            raise TaskarithError(f"{model.model_id}: the pre-trained model gives NaN or Inf embeddings for the "
                                 f"class prompts; its weights are damaged or overflow in their dtype")
        save_safetensors(path, {"head": head}, {"classes": json.dumps(list(class_names))})
    _memory[key] = head
    return head
