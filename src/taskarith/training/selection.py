"""Which parameters a paradigm trains, chosen by name with presets (the paper's Table 5 ablation included)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from torch import nn

from ..errors import TaskarithError

# Q, K, V and O projection weights of each family: BERT, HF CLIP, T5, open_clip.
ATTENTION = (
    r"attention\.self\.(query|key|value)\.weight$",
    r"attention\.output\.dense\.weight$",
    r"self_attn\.(q|k|v|out)_proj\.weight$",
    r"(SelfAttention|EncDecAttention)\.(q|k|v|o)\.weight$",
    r"attn\.(in_proj_weight|out_proj\.weight)$",
)
ATTENTION_BIAS = (
    r"attention\.self\.(query|key|value)\.bias$",
    r"attention\.output\.dense\.bias$",
    r"self_attn\.(q|k|v|out)_proj\.bias$",
    r"attn\.(in_proj_bias|out_proj\.bias)$",
)
MLP = (
    r"intermediate\.dense\.weight$",
    r"layer\.\d+\.output\.dense\.weight$",
    r"mlp\.fc[12]\.weight$",
    r"DenseReluDense\.(wi|wi_0|wi_1|wo)\.weight$",
    r"mlp\.c_(fc|proj)\.weight$",
)
MLP_BIAS = (
    r"intermediate\.dense\.bias$",
    r"layer\.\d+\.output\.dense\.bias$",
    r"mlp\.fc[12]\.bias$",
    r"mlp\.c_(fc|proj)\.bias$",
)

PRESETS: dict[str, tuple[str, ...]] = {
    "full": (r".*",),
    "attention": ATTENTION,
    "attention+bias": ATTENTION + ATTENTION_BIAS,
    "attention+mlp": ATTENTION + MLP,
    "attention+mlp+bias": ATTENTION + ATTENTION_BIAS + MLP + MLP_BIAS,
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


def patterns_for(preset: str) -> tuple[str, ...]:
    """A preset's patterns, or a user regex written `regex:PATTERN`."""
    if preset.startswith("regex:"):
        pattern = preset[len("regex:"):]
        try:
            re.compile(pattern)
        except re.error as e:
            raise TaskarithError(f"preset {preset!r}: invalid regex ({e})") from e
        return (pattern,)
    if preset not in PRESETS:
        raise TaskarithError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)} or regex:PATTERN")
    return PRESETS[preset]


def match_names(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    compiled = [re.compile(p) for p in patterns]
    return [n for n in names if any(c.search(n) for c in compiled)]


def select(net: nn.Module, preset: str) -> Selection:
    """Select parameters of `net` by preset; selecting nothing is an error."""
    params = dict(net.named_parameters())
    names = match_names(params, patterns_for(preset))
    if not names:
        raise TaskarithError(f"preset {preset!r} selects no parameter of {type(net).__name__}")
    return Selection(
        preset=preset,
        names=tuple(names),
        count=sum(params[n].numel() for n in names),
        total=sum(p.numel() for p in params.values()),
    )
