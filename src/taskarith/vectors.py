"""Task vectors τ = θ_t − θ0 over the trained parameters: safetensors with JSON metadata, arithmetic,
cosine similarity, and θ0 + δ written into the base in place (a linear τ is applied through the
linearized model instead: evaluate.sweep)."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch

from .version import __version__
from .atomic import save_safetensors
from .errors import TaskarithError, clip
from .models.base import Model

SCHEMA_VERSION = 1
_META_KEY = "taskarith"
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)  # the dtypes weights are kept in


@dataclass
class TaskVector:
    tensors: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)

    # --- identity -------------------------------------------------------------------------------
    @property
    def linear(self) -> bool:
        """A linear τ lives in the tangent space and applies to the linearized model."""
        return self.meta.get("paradigm") == "linear"

    @property
    def names(self) -> list[str]:
        return list(self.tensors)

    def label(self) -> str:
        return f"{self.meta.get('task', '?')}/{self.meta.get('paradigm', '?')}"

    # --- arithmetic ----------------------------------------------------------------------------
    def _check_compatible(self, other: "TaskVector") -> None:
        if self.meta.get("base_hash") != other.meta.get("base_hash"):
            raise TaskarithError(
                f"task vectors {self.label()} and {other.label()} come from different bases "
                f"({self.meta.get('base_model')} {str(self.meta.get('base_hash'))[:12]} vs "
                f"{other.meta.get('base_model')} {str(other.meta.get('base_hash'))[:12]})"
            )
        if self.linear != other.linear:
            raise TaskarithError(f"cannot combine linear and non-linear task vectors ({self.label()}, {other.label()})")
        if self.tensors.keys() != other.tensors.keys():
            extra = sorted(set(self.tensors) ^ set(other.tensors))[0]
            raise TaskarithError(f"task vectors {self.label()} and {other.label()} differ in parameter {extra!r}")
        for n, t in self.tensors.items():
            if t.shape != other.tensors[n].shape:
                raise TaskarithError(
                    f"{n}: shape {tuple(t.shape)} in {self.label()} vs {tuple(other.tensors[n].shape)} in {other.label()}"
                )
            if t.dtype != other.tensors[n].dtype:
                raise TaskarithError(f"{n}: dtype {t.dtype} in {self.label()} vs {other.tensors[n].dtype} in "
                                     f"{other.label()}")

    def _combined_meta(self, other: "TaskVector", op: str) -> dict:
        meta = dict(self.meta)
        meta["task"] = f"{self.meta.get('task')}{op}{other.meta.get('task')}"
        return meta

    def __add__(self, other: "TaskVector | int") -> "TaskVector":
        if isinstance(other, int) and other == 0:  # lets sum() start from 0
            return self
        self._check_compatible(other)
        return TaskVector({n: t + other.tensors[n] for n, t in self.tensors.items()}, self._combined_meta(other, "+"))

    __radd__ = __add__

    def __sub__(self, other: "TaskVector") -> "TaskVector":
        self._check_compatible(other)
        return TaskVector({n: t - other.tensors[n] for n, t in self.tensors.items()}, self._combined_meta(other, "-"))

    def __mul__(self, coef: float) -> "TaskVector":
        if not isinstance(coef, (int, float)):
            return NotImplemented
        return replace(self, tensors={n: t * coef for n, t in self.tensors.items()})

    __rmul__ = __mul__

    def __neg__(self) -> "TaskVector":
        return self * -1.0

    def _shared(self, other: "TaskVector") -> list[str]:
        """Names in both with equal shapes, sorted: sums then do not depend on the order tensors were stored in."""
        return sorted(n for n in self.tensors if n in other.tensors and self.tensors[n].shape == other.tensors[n].shape)

    def dot(self, other: "TaskVector") -> float:
        shared = self._shared(other)
        return float(sum(torch.sum(self.tensors[n].double() * other.tensors[n].double()) for n in shared))

    def norm(self, names: Sequence[str] | None = None) -> float:
        names = sorted(self.tensors if names is None else names)
        return math.sqrt(float(sum(torch.sum(self.tensors[n].double() ** 2) for n in names)))

    def cosine(self, other: "TaskVector") -> float:
        """Cosine similarity over the parameters both vectors share."""
        shared = self._shared(other)
        if not shared:
            raise TaskarithError(f"task vectors {self.label()} and {other.label()} share no parameter")
        denom = self.norm(shared) * other.norm(shared)
        return self.dot(other) / denom if denom > 0 else 0.0

    def numel(self) -> int:
        return sum(t.numel() for t in self.tensors.values())

    # --- base checks and application ------------------------------------------------------------
    def check_base(self, model: Model) -> None:
        params = model.named_weights()
        for n, t in self.tensors.items():
            if n not in params:
                raise TaskarithError(f"task vector {self.label()} has parameter {n!r}, which {model.model_id} lacks")
            if params[n].shape != t.shape:
                raise TaskarithError(
                    f"{n}: task vector shape {tuple(t.shape)} vs {tuple(params[n].shape)} in {model.model_id}"
                )
            if params[n].dtype != t.dtype:  # applying would silently round τ to the model's precision
                raise TaskarithError(f"{n}: task vector dtype {t.dtype} vs {params[n].dtype} in {model.model_id}")
        got = model.fingerprint(self.names)
        if got != self.meta.get("base_hash"):
            raise TaskarithError(
                f"task vector {self.label()} was made on {self.meta.get('base_model')} "
                f"(θ0 hash {str(self.meta.get('base_hash'))[:12]}), not on {model.model_id} (θ0 hash {got[:12]})"
            )

    # --- files ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        meta = {"schema": SCHEMA_VERSION, "taskarith_version": __version__, **self.meta}
        save_safetensors(path, self.tensors, {_META_KEY: json.dumps(meta, sort_keys=True)})

    @classmethod
    def load(cls, path: str | Path) -> "TaskVector":
        from .tensor_files import read_safetensors

        tensors, header = read_safetensors(path)
        meta = vector_meta(path, header)
        if not tensors:
            raise TaskarithError(f"{path}: the task vector holds no tensors")
        for n, t in tensors.items():
            if t.dtype not in FLOAT_DTYPES:
                raise TaskarithError(f"{path}: tensor {n!r} has dtype {t.dtype}; expected float16, bfloat16, "
                                     f"float32 or float64")
            if not torch.isfinite(t).all():
                raise TaskarithError(f"{path}: tensor {n!r} holds NaN or Inf")
        return cls(tensors, meta)


def vector_meta(path: str | Path, header: Mapping[str, str]) -> dict:
    """A task vector file's metadata from its safetensors header, checked: present, JSON, a known schema."""
    if _META_KEY not in header:
        raise TaskarithError(f"{path}: not a taskarith task vector (no '{_META_KEY}' metadata)")
    try:
        meta = json.loads(header[_META_KEY])
    except json.JSONDecodeError as e:
        raise TaskarithError(f"{path}: task-vector metadata is not valid JSON ({e.msg})") from e
    except RecursionError as e:  # the parser recurses once per nesting level
        raise TaskarithError(f"{path}: task-vector metadata is nested too deeply") from e
    except ValueError as e:  # an integer of over 4,300 digits
        raise TaskarithError(f"{path}: task-vector metadata is not valid JSON ({clip(str(e))})") from e
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA_VERSION:
        got = meta.get("schema") if isinstance(meta, dict) else None
        raise TaskarithError(f"{path}: task-vector schema {got!r} is not supported (expected {SCHEMA_VERSION})")
    return meta


def check_compatible(vectors: Sequence[TaskVector]) -> None:
    """Every vector shares the first one's base, paradigm kind, names, shapes and dtypes."""
    for tv in vectors[1:]:
        vectors[0]._check_compatible(tv)


def combine(terms: Sequence[tuple[TaskVector, float]]) -> dict[str, torch.Tensor]:
    """Σ α_t τ_t as a plain tensor dict (names must agree)."""
    first = terms[0][0]
    check_compatible([tv for tv, _ in terms])
    out = {n: torch.zeros_like(t) for n, t in first.tensors.items()}
    for tv, coef in terms:
        # by name: a loaded vector keeps its tensors in file order, a freshly trained one in module order
        torch._foreach_add_(list(out.values()), [tv.tensors[n] for n in out], alpha=coef)
    return out


@contextlib.contextmanager
def applied_in_place(model: Model, delta: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """θ0 + δ written into the module's own tensors, restored bit-exactly on exit."""
    params = model.named_weights()
    names = list(delta)
    targets = [params[n].data for n in names]
    saved = [t.clone() for t in targets]
    try:
        with torch.no_grad():
            torch._foreach_add_(targets, [delta[n].to(t.dtype) for n, t in zip(names, targets)])
        yield
    finally:
        with torch.no_grad():
            for t, s in zip(targets, saved):
                t.copy_(s)
