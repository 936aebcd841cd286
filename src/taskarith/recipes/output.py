"""What an export writes and where it computes: the output dtypes, the device the merge's arithmetic runs on,
and the base's config.json retyped to the output dtype."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..groundwork.errors import TaskarithError, quote
from ..groundwork.safety import parse_json, read_text

# the merge itself runs in float32 (float64 for float64 weights); these are what it may be written as
OUTPUT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_device(name: str) -> torch.device:
    """The device `--device` names, checked: the CPU, or a CUDA device this machine has."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise TaskarithError(f"--device {quote(name)}: not a device (cpu, cuda or cuda:N)") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise TaskarithError(f"--device {quote(name)}: the merge runs on cpu or cuda")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (device.index or 0) >= count:
        raise TaskarithError(f"--device {quote(name)}: this machine has "
                             + (f"{count} CUDA device(s)" if count else "no CUDA device"))
    return device


def retyped_config(config: Path, dtype: torch.dtype) -> str:
    """The base's config.json with its dtype key (`torch_dtype`, or `dtype` in newer transformers) set to the
    output's, so that loading with dtype="auto" gives the weights as written."""
    tree = parse_json(read_text(config), str(config))
    if not isinstance(tree, dict):
        raise TaskarithError(f"{config}: not a model config (a JSON object)")
    name = str(dtype).removeprefix("torch.")
    keys = [k for k in ("torch_dtype", "dtype") if k in tree] or ["torch_dtype"]
    return json.dumps(tree | {k: name for k in keys}, indent=2) + "\n"
