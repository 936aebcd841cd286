"""Encoder-decoder text-to-text models (Flan-T5): classification by scoring each label's target text.

f(x) is, for every candidate target (the task's label words), the log-likelihood of its tokens under
teacher forcing: the sum of token log-probabilities, a [batch, classes] tensor. The head is the targets'
token ids, and `logits` returns f(x) unchanged, so cross-entropy over it is rank classification. Inputs are
strings that carry their candidate targets as `.choices` (data.glue's prompts do), because f itself, not
only the head, depends on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..groundwork.errors import TaskarithError
from .base import Batch, Model
from .loading import load_pretrained, model_source

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class _ChoiceScorer(nn.Module):
    """The candidates' log-likelihoods in one module: the encoder runs once per input, the decoder once per
    (input, candidate). It registers `net`'s own children under their own names, so a functional call with
    `net`'s parameter names reaches every weight it uses, tied ones included."""

    encoder: nn.Module  # one of `net`'s children, registered below

    def __init__(self, net: PreTrainedModel):
        super().__init__()
        for name, child in net.named_children():
            self.add_module(name, child)
        self.decode = net.forward  # runs on the same children; given encoder outputs it only decodes
        self.start = net.config.decoder_start_token_id

    def forward(self, input_ids, attention_mask, choice_ids, choice_mask) -> torch.Tensor:
        b, c = input_ids.shape[0], choice_ids.shape[0]
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        targets, target_mask = choice_ids.repeat(b, 1), choice_mask.repeat(b, 1)  # row i·c + j: input i, choice j
        shifted = torch.cat([torch.full_like(targets[:, :1], self.start), targets[:, :-1]], dim=1)
        out = self.decode(encoder_outputs=(hidden.repeat_interleave(c, 0),),
                          attention_mask=attention_mask.repeat_interleave(c, 0),
                          decoder_input_ids=shifted, decoder_attention_mask=target_mask, use_cache=False)
        logp = out.logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return (logp * target_mask.to(logp.dtype)).sum(-1).view(b, c)


class T5TextToText(Model):
    """T5ForConditionalGeneration behind the Model interface; θ are all of its parameters."""

    def __init__(self, model: str, *, max_length: int = 128, dtype: torch.dtype = torch.float32,
                 trust_pickle: bool = False):
        from transformers import AutoTokenizer, T5ForConditionalGeneration

        path = model_source(model)
        tokenizer = load_pretrained(AutoTokenizer, path, "tokenizer")
        # eager attention: torch.func.jvp does not run through SDPA on CPU; pickled weights only when trusted
        net = load_pretrained(T5ForConditionalGeneration, path, "text-to-text model", attn_implementation="eager",
                               dtype=dtype, use_safetensors=None if trust_pickle else True)
        self._setup(net, tokenizer, model, max_length)

    @classmethod
    def from_modules(cls, net: PreTrainedModel, tokenizer: Any, *, model_id: str,
                     max_length: int = 128) -> "T5TextToText":
        """Wrap an already built T5ForConditionalGeneration (tests build tiny random ones from configs)."""
        self = cls.__new__(cls)
        self._setup(net, tokenizer, model_id, max_length)
        return self

    def _setup(self, net: PreTrainedModel, tokenizer: Any, model_id: str, max_length: int) -> None:
        if not getattr(net.config, "is_encoder_decoder", False):
            raise TaskarithError(f"{model_id}: {type(net).__name__} is not an encoder-decoder model")
        self.net, self.tokenizer, self.model_id, self.max_length = net.eval(), tokenizer, model_id, max_length
        self._scorer = _ChoiceScorer(net)
        self._targets: dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def targets(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask of the candidate targets (with the tokenizer's end-of-sequence token)."""
        key = tuple(texts)
        if key not in self._targets:
            enc = self.tokenizer(list(key), padding=True, return_tensors="pt")
            self._targets[key] = (enc["input_ids"], enc["attention_mask"])
        return self._targets[key]

    def collate(self, inputs: Sequence[str]) -> Batch:
        choices = {getattr(x, "choices", None) for x in inputs}
        shared = next(iter(choices)) if len(choices) == 1 else None
        if shared is None:
            raise TaskarithError(f"{self.model_id}: a batch's inputs must all carry the same candidate targets "
                                 f"(.choices), as glue: task prompts do; got {len(choices)} different sets")
        choice_ids, choice_mask = self.targets(shared)
        enc = self.tokenizer([str(x) for x in inputs], padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "choice_ids": choice_ids, "choice_mask": choice_mask}

    def _forward(self, batch: Batch, params: Mapping[str, torch.Tensor] | None) -> torch.Tensor:
        if params is None:
            return self.pool(self._scorer(**batch), batch)
        return self.pool(functional_call(self._scorer, dict(params), args=(), kwargs=batch, strict=False), batch)

    def pool(self, outputs: Any, batch: Batch) -> torch.Tensor:
        return outputs  # the scorer already gives one log-likelihood per candidate

    def zero_shot_head(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """The target token ids, one row per class; the first template renders a class name as its target."""
        return self.targets([templates[0].format(name) for name in class_names])[0].clone()

    def logits(self, representation: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        if representation.shape[-1] != head.shape[0]:
            raise TaskarithError(f"{self.model_id}: inputs were scored against {representation.shape[-1]} targets "
                                 f"but the head has {head.shape[0]} classes")
        return representation
