"""Reading safetensors files with one-line errors for missing, truncated or corrupt files."""

from __future__ import annotations

from pathlib import Path

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
