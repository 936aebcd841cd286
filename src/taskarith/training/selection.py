"""Which parameters a paradigm trains, chosen by name with presets (the paper's Table 5 ablation included)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # annotations only: the CLI reads PRESETS without paying for torch
    from torch import nn

from ..groundwork.errors import TaskarithError, unknown


@dataclass(frozen=True)
class Parts:
    """Where one architecture keeps the parts the presets choose among, as parameter-name patterns."""

    attention: tuple[str, ...]  # the Q, K, V and O projection weights
    attention_bias: tuple[str, ...]
    mlp: tuple[str, ...]
    mlp_bias: tuple[str, ...]


_BERT = Parts(
    attention=(r"attention\.self\.(query|key|value)\.weight$", r"attention\.output\.dense\.weight$"),
    attention_bias=(r"attention\.self\.(query|key|value)\.bias$", r"attention\.output\.dense\.bias$"),
    mlp=(r"intermediate\.dense\.weight$", r"layer\.\d+\.output\.dense\.weight$"),
    mlp_bias=(r"intermediate\.dense\.bias$", r"layer\.\d+\.output\.dense\.bias$"),
)
_CLIP = Parts(
    attention=(r"self_attn\.(q|k|v|out)_proj\.weight$",), attention_bias=(r"self_attn\.(q|k|v|out)_proj\.bias$",),
    mlp=(r"mlp\.fc[12]\.weight$",), mlp_bias=(r"mlp\.fc[12]\.bias$",),
)
_T5 = Parts(  # T5 has no biases
    attention=(r"(SelfAttention|EncDecAttention)\.(q|k|v|o)\.weight$",), attention_bias=(),
    mlp=(r"DenseReluDense\.(wi|wi_0|wi_1|wo)\.weight$",), mlp_bias=(),
)

# By the `model_type` of the HF config; a BERT-like encoder with its own names is one entry here.
ARCHITECTURES: dict[str, Parts] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "mpnet": Parts(
        attention=(r"attention\.attn\.(q|k|v|o)\.weight$",), attention_bias=(r"attention\.attn\.(q|k|v|o)\.bias$",),
        mlp=_BERT.mlp, mlp_bias=_BERT.mlp_bias,
    ),
    "distilbert": Parts(
        attention=(r"attention\.(q|k|v|out)_lin\.weight$",), attention_bias=(r"attention\.(q|k|v|out)_lin\.bias$",),
        mlp=(r"ffn\.lin[12]\.weight$",), mlp_bias=(r"ffn\.lin[12]\.bias$",),
    ),
    "clip": _CLIP,
    "clip_vision_model": _CLIP,
    "clip_text_model": _CLIP,
    "t5": _T5,
    "mt5": _T5,
    "open_clip": Parts(  # no HF config: reached through the union of all architectures
        attention=(r"attn\.(in_proj_weight|out_proj\.weight)$",),
        attention_bias=(r"attn\.(in_proj_bias|out_proj\.bias)$",),
        mlp=(r"mlp\.c_(fc|proj)\.weight$",), mlp_bias=(r"mlp\.c_(fc|proj)\.bias$",),
    ),
}

# Each preset names the parts it trains (the paper's Table 5 ablation); "full" trains every parameter.
PRESETS: dict[str, tuple[str, ...]] = {
    "full": (),
    "attention": ("attention",),
    "attention+bias": ("attention", "attention_bias"),
    "attention+mlp": ("attention", "mlp"),
    "attention+mlp+bias": ("attention", "attention_bias", "mlp", "mlp_bias"),
}


@dataclass(frozen=True)
class Selection:
    """The selected parameter names, with what the run records about them."""

    preset: str
    names: tuple[str, ...]
    count: int
    total: int

    @property
    def share(self) -> float:
        return self.count / self.total if self.total else 0.0

    def record(self) -> dict:
        return {"preset": self.preset, "names": list(self.names), "count": self.count,
                "total": self.total, "share": self.share}


def patterns_for(preset: str, architecture: str | None = None) -> tuple[str, ...]:
    """A preset's patterns for one architecture (a config's `model_type`), or a user regex written
    `regex:PATTERN`. An architecture not in the table (or None: names alone) gets every architecture's patterns."""
    if preset.startswith("regex:"):
        pattern = preset[len("regex:"):]
        try:
            re.compile(pattern)
        except re.error as e:
            raise TaskarithError(f"preset {preset!r}: invalid regex ({e})") from e
        return (pattern,)
    if preset not in PRESETS:
        raise unknown("preset", preset, PRESETS, also=" or regex:PATTERN")
    if preset == "full":
        return (r".*",)
    tables = [ARCHITECTURES[architecture]] if architecture in ARCHITECTURES else list(ARCHITECTURES.values())
    patterns = (p for table in tables for part in PRESETS[preset] for p in getattr(table, part))
    return tuple(dict.fromkeys(patterns))


def architecture_of(net: nn.Module) -> str | None:
    """The `model_type` of the first HF config in `net` (a wrapper may hold the model inside), if any."""
    for module in net.modules():
        model_type = getattr(getattr(module, "config", None), "model_type", None)
        if isinstance(model_type, str):
            return model_type
    return None


def match_names(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    compiled = [re.compile(p) for p in patterns]
    return [n for n in names if any(c.search(n) for c in compiled)]


def select(net: nn.Module, preset: str) -> Selection:
    """Select parameters of `net` by preset; selecting nothing is an error."""
    params = dict(net.named_parameters())
    names = match_names(params, patterns_for(preset, architecture_of(net)))
    if not names:
        raise TaskarithError(f"preset {preset!r} selects no parameter of {type(net).__name__}")
    return Selection(
        preset=preset,
        names=tuple(names),
        count=sum(params[n].numel() for n in names),
        total=sum(p.numel() for p in params.values()),
    )
