"""Image inputs decoded to RGB: file paths, PIL images and uint8 arrays alike."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..groundwork.errors import TaskarithError


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise TaskarithError("image inputs need Pillow: pip install 'taskarith[vision]'") from e
    return Image


def to_rgb(item: Any):
    """One image as an RGB PIL image: a file path, a PIL image, or a uint8 array (H×W, H×W×1, ×3 or ×4)."""
    Image = _pil()
    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as e:
            raise TaskarithError(f"{item}: not a readable image ({e})") from e
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] not in (1, 3, 4)):
            raise TaskarithError(f"image array of dtype {item.dtype} and shape {item.shape}: expected uint8 "
                                 f"H×W or H×W×{{1,3,4}}")
        return Image.fromarray(item[..., 0] if item.ndim == 3 and item.shape[2] == 1 else item).convert("RGB")
    raise TaskarithError(f"image input of type {type(item).__name__}: expected a path, a PIL image or a uint8 array")
