"""Model families behind one interface (see base.Model)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from .base import Batch, Model
from .clip import ClipVision
from .t5 import T5TextToText
from .text_encoder import EMBEDDED_MODEL, TextEncoder

if TYPE_CHECKING:
    from ..config import ModelConfig


FAMILIES = {"text-encoder": TextEncoder, "clip": ClipVision, "t5": T5TextToText}


def resolve_device(device: str):
    """`auto` is cuda where available, else cpu; anything else must name a device torch can use."""
    import torch

    from ..groundwork.errors import TaskarithError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise TaskarithError(f"model.device = {device!r}: not a device name (auto, cpu, cuda, cuda:N, mps)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TaskarithError(f"model.device = {device!r}: no CUDA device is available; use auto or cpu")
    return dev


def load_family(family: str, model: str, *, device: str = "auto", **kwargs) -> Model:
    """Load a family's model by name and move it to `device`."""
    from ..groundwork.errors import unknown

    if family not in FAMILIES:
        raise unknown("model family", family, FAMILIES)
    target = resolve_device(device)  # a bad device fails before a long load
    loaded = FAMILIES[family](model, **kwargs)
    loaded.net.to(target)
    return loaded


def load_model(cfg: "ModelConfig") -> Model:
    """The model a config's `model` section names, with the options its family takes."""
    options = {"max_length": cfg.max_length, "trust_pickle": cfg.trust_pickle, "tokenizer": cfg.tokenizer}
    cls = FAMILIES.get(cfg.family)
    accepted = inspect.signature(cls).parameters if cls else options  # an unknown family fails in load_family
    model = load_family(cfg.family, cfg.name, device=cfg.device,
                        **{k: v for k, v in options.items() if k in accepted})
    model.precision = cfg.precision
    return model


__all__ = ["Batch", "Model", "EMBEDDED_MODEL", "TextEncoder", "ClipVision", "T5TextToText", "FAMILIES",
           "load_family", "load_model", "resolve_device"]
