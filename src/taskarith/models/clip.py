"""CLIP: f(x) is the projected image embedding of the vision tower; the frozen zero-shot head comes from
the text tower of the same checkpoint (class names × templates, averaged, normalised).

`model.name` is an HF folder or cached hub id (CLIPModel layout), or an open_clip checkpoint file, which is
converted on load (openclip_convert). The text tower is loaded only while heads are built.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..groundwork.errors import TaskarithError
from .base import Batch, Model
from .images import to_rgb
from .loading import load_pretrained, model_source
from .openclip_convert import CHECKPOINT_SUFFIXES, load_openclip

_PROMPT_BATCH = 256


def image_processor_class():
    """The PIL-backed CLIP processor: it resizes as OpenAI's preprocessing did, with or without torchvision
    (transformers 5 names it CLIPImageProcessorPil; before, CLIPImageProcessor was PIL-backed)."""
    import transformers

    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor


@contextlib.contextmanager
def _quiet_loading():
    """Loading one tower from a full CLIP checkpoint leaves the other's weights unused, by design; the
    loader's report of them would only be noise."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _with_projection(config, sub):
    """A tower config that carries the checkpoint's projection size (HF sub-configs may keep the 512 default)."""
    sub = sub.__class__.from_dict(sub.to_dict())
    sub.projection_dim = config.projection_dim
    return sub


class ClipVision(Model):
    """HF CLIP behind the Model interface; images go in as paths, PIL images or uint8 arrays."""

    def __init__(self, model: str, *, max_length: int = 77, trust_pickle: bool = False,
                 tokenizer: str | None = None, dtype: torch.dtype = torch.float32):
        path = model_source(model)
        self.model_id = model
        if Path(path).suffix.lower() in CHECKPOINT_SUFFIXES:
            self._from_openclip(Path(path), trust_pickle, tokenizer, dtype)
        else:
            self._from_hf(path, dtype, trust_pickle)
        self._finish(max_length)

    def _from_hf(self, path: str, dtype: torch.dtype, trust_pickle: bool) -> None:
        from transformers import (AutoTokenizer, CLIPConfig, CLIPTextModelWithProjection,
                                  CLIPVisionModelWithProjection)

        config = load_pretrained(CLIPConfig, path, "CLIP config")
        if getattr(config, "model_type", None) != "clip":
            raise TaskarithError(f"{path}: model type {config.model_type!r} is not CLIP")
        vision_config = _with_projection(config, config.vision_config)
        text_config = _with_projection(config, config.text_config)
        # eager attention: torch.func.jvp does not run through SDPA on CPU; pickled weights only when trusted
        safe = None if trust_pickle else True
        with _quiet_loading():
            self.net = load_pretrained(CLIPVisionModelWithProjection, path, "vision tower", config=vision_config,
                                        attn_implementation="eager", dtype=dtype, use_safetensors=safe)
        self.processor = load_pretrained(image_processor_class(), path, "image processor")

        def text():
            with _quiet_loading():
                tower = load_pretrained(CLIPTextModelWithProjection, path, "text tower", config=text_config,
                                         attn_implementation="eager", dtype=dtype, use_safetensors=safe)
            return tower, load_pretrained(AutoTokenizer, path, "tokenizer")

        self._text = text

    def _from_openclip(self, path: Path, trust_pickle: bool, tokenizer: str | None, dtype: torch.dtype) -> None:
        from transformers import AutoTokenizer

        clip = load_openclip(path, trust_pickle=trust_pickle, dtype=dtype)
        self.net = vision_tower(clip)
        size = clip.config.vision_config.image_size
        # OpenAI's mean and std are the processor's defaults and open_clip's for these models
        self.processor = image_processor_class()(size={"shortest_edge": size},
                                                 crop_size={"height": size, "width": size})
        del clip
        source = model_source(tokenizer) if tokenizer else str(path.parent)

        def text():
            tok = load_pretrained(AutoTokenizer, source, "CLIP tokenizer (set model.tokenizer to an HF CLIP "
                                                          "folder or cached id)")
            clip = load_openclip(path, trust_pickle=trust_pickle, dtype=dtype, eos_token_id=tok.eos_token_id)
            return text_tower(clip), tok

        self._text = text

    @classmethod
    def from_modules(cls, clip: nn.Module, tokenizer: Any, processor: Any, *, model_id: str,
                     max_length: int = 77) -> "ClipVision":
        """Wrap an already built CLIPModel (tests build tiny random ones from configs)."""
        self = cls.__new__(cls)
        self.model_id, self.processor = model_id, processor
        self.net = vision_tower(clip)
        tower = text_tower(clip)
        self._text = lambda: (tower, tokenizer)
        self._finish(max_length)
        return self

    def _finish(self, max_length: int) -> None:
        self.net.eval()
        self.max_length = max_length
        p = self.processor
        self._scale = float(p.rescale_factor) if p.do_rescale else 1.0
        self._mean = torch.tensor(p.image_mean if p.do_normalize else [0.0, 0.0, 0.0]).view(1, -1, 1, 1)
        self._std = torch.tensor(p.image_std if p.do_normalize else [1.0, 1.0, 1.0]).view(1, -1, 1, 1)

    # --- inputs ------------------------------------------------------------------------------
    def _pixels(self, items: Sequence[Any]) -> torch.Tensor:
        """Resized and cropped by the model's processor, kept as uint8 (a quarter of float32's memory)."""
        out = self.processor(images=[to_rgb(x) for x in items], do_rescale=False, do_normalize=False,
                             return_tensors="pt")["pixel_values"]
        return out if out.dtype == torch.uint8 else out.round().clamp(0, 255).to(torch.uint8)

    def collate(self, inputs: Sequence[Any]) -> Batch:
        inputs = list(inputs)
        workers = min(os.cpu_count() or 1, max(1, len(inputs) // 16))
        if workers == 1:
            return {"pixels": self._pixels(inputs)}
        # decoding and resizing release the GIL, so threads share the work
        size = -(-len(inputs) // workers)
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(self._pixels, [inputs[i:i + size] for i in range(0, len(inputs), size)]))
        return {"pixels": torch.cat(parts)}

    def _normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        dtype = next(self.net.parameters()).dtype
        mean, std = self._mean.to(pixels.device, dtype), self._std.to(pixels.device, dtype)
        return (pixels.to(dtype) * self._scale - mean) / std

    # --- f(x) and the head ---------------------------------------------------------------------
    def represent(self, batch: Batch, params=None) -> torch.Tensor:
        return super().represent({"pixel_values": self._normalize(batch["pixels"])}, params)

    def pool(self, outputs: Any, batch: Batch) -> torch.Tensor:
        return outputs.image_embeds

    def logits(self, representation: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        # heads come from the on-disk cache on the CPU; the representation may live on an accelerator
        return super().logits(representation, head.to(representation.device, representation.dtype))

    @torch.no_grad()
    def zero_shot_head(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        tower, tokenizer = self._text()
        device = self.device
        tower.to(device).eval()
        length = min(self.max_length, tower.config.max_position_embeddings)
        prompts = [t.format(name) for name in class_names for t in templates]
        embeds = []
        for start in range(0, len(prompts), _PROMPT_BATCH):
            enc = tokenizer(prompts[start:start + _PROMPT_BATCH], padding=True, truncation=True,
                            max_length=length, return_tensors="pt")
            out = tower(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
            embeds.append(nn.functional.normalize(out.text_embeds.float(), dim=-1))
        per_class = torch.cat(embeds).view(len(class_names), len(templates), -1).mean(1)
        return nn.functional.normalize(per_class, dim=-1).cpu()


def _tower(cls, config, sub, modules: dict[str, nn.Module]):
    """A CLIP tower model sharing the given submodules (no copy) with a CLIPModel."""
    with torch.device("meta"):  # every submodule is replaced, so nothing is allocated twice
        tower = cls(_with_projection(config, sub))
    for name, module in modules.items():
        setattr(tower, name, module)
    return tower


def vision_tower(clip) -> nn.Module:
    """CLIPVisionModelWithProjection over a CLIPModel's own vision weights."""
    from transformers import CLIPVisionModelWithProjection

    return _tower(CLIPVisionModelWithProjection, clip.config, clip.config.vision_config,
                  {"vision_model": clip.vision_model, "visual_projection": clip.visual_projection})


def text_tower(clip) -> nn.Module:
    """CLIPTextModelWithProjection over a CLIPModel's own text weights."""
    from transformers import CLIPTextModelWithProjection

    return _tower(CLIPTextModelWithProjection, clip.config, clip.config.text_config,
                  {"text_model": clip.text_model, "text_projection": clip.text_projection})

