"""Reading safetensors files with one-line errors for missing, truncated or corrupt files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable

import torch

from .errors import TaskarithError
from .safety import require_regular


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the string metadata of a safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    try:
        require_regular(path)
    except FileNotFoundError:
        raise TaskarithError(f"{path}: no such file") from None
    except OSError as e:
        raise TaskarithError(f"{path}: cannot read ({e.strerror})") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for damaged files
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TaskarithError(f"{path}: not a readable safetensors file ({first})") from e
    return tensors, meta


def named_digest(names: Iterable[str], get: Callable[[str], torch.Tensor]) -> str:
    """sha256 over name|dtype|shape| and the bytes of each tensor, in name order (so storage order is moot),
    reading one tensor at a time: a model's θ0 hash, a vector's input hash and a folder's streamed check are
    this one digest."""
    h = hashlib.sha256()
    for name in sorted(names):
        t = get(name).detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
