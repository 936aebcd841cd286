"""Model families behind one interface (see base.Family)."""

from .base import Batch, Family
from .text_encoder import EMBEDDED_MODEL, TextEncoder

FAMILIES = {"text-encoder": TextEncoder}


def load_family(family: str, model: str, **kwargs) -> Family:
    from ..errors import TaskarithError

    if family not in FAMILIES:
        raise TaskarithError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[family](model, **kwargs)


__all__ = ["Batch", "Family", "EMBEDDED_MODEL", "TextEncoder", "FAMILIES", "load_family"]
