"""Training checkpoints in one safetensors file: trained tensors, AdamW state, scheduler, RNG, step.

The data order is a pure function of (seed, step), so the step is the data position."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..groundwork.atomic import save_safetensors
from ..groundwork.errors import TaskarithError, first_line
from ..groundwork.safety import parse_json
from ..groundwork.tensor_files import read_safetensors
from ..vectors import FLOAT_DTYPES


def save_checkpoint(path: Path, *, step: int, trainable: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, scheduler, fingerprint: str) -> None:
    opt = optimizer.state_dict()
    tensors = {f"param/{n}": t.detach() for n, t in trainable.items()}
    for idx, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim/{idx}/{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng/torch"] = torch.get_rng_state()
    meta = {
        "step": step,
        "fingerprint": fingerprint,
        "param_groups": opt["param_groups"],
        "scheduler": scheduler.state_dict(),
    }
    save_safetensors(path, tensors, {"checkpoint": json.dumps(meta)})


def load_checkpoint(path: Path, *, trainable: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    scheduler, fingerprint: str) -> int:
    """Restore everything in place; returns the step to continue from."""
    tensors, header = read_safetensors(path)
    try:
        meta = parse_json(header["checkpoint"], f"{path}: checkpoint metadata")
        step, saved_fingerprint = int(meta["step"]), meta["fingerprint"]
        param_groups, scheduler_state = meta["param_groups"], meta["scheduler"]
    except (TaskarithError, KeyError, TypeError, ValueError) as e:  # not JSON, a key twice, a field missing
        raise TaskarithError(f"{path}: not a taskarith training checkpoint; delete it to start over") from e
    if saved_fingerprint != fingerprint:
        raise TaskarithError(f"{path}: checkpoint belongs to another configuration; delete it to start over")
    for key, value in tensors.items():
        if key.startswith(("param/", "optim/")) and value.dtype not in FLOAT_DTYPES:
            raise TaskarithError(f"{path}: checkpoint tensor {key!r} has dtype {value.dtype}; expected a float")
        if key.startswith(("param/", "optim/")) and not torch.isfinite(value).all():
            raise TaskarithError(f"{path}: checkpoint tensor {key!r} holds NaN or Inf; delete it to start over")
    with torch.no_grad():
        for n, t in trainable.items():
            saved = tensors.get(f"param/{n}")
            if saved is None or saved.shape != t.shape or saved.dtype != t.dtype:
                raise TaskarithError(f"{path}: checkpoint lacks parameter {n!r} or has another shape or dtype")
            t.copy_(saved)
    try:
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, idx, name = key.split("/", 2)
                state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
        scheduler.load_state_dict(scheduler_state)
        torch.set_rng_state(tensors["rng/torch"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise TaskarithError(f"{path}: damaged optimizer, scheduler or RNG state ({first_line(e)}); "
                             f"delete it to start over") from e
    return step
