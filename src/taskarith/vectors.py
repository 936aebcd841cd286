"""Task vectors τ = θ_t − θ0 over the trained parameters: safetensors with JSON metadata, arithmetic,
cosine similarity, and θ0 + δ written into the base in place (a linear τ is applied through the
linearized model instead: evaluate.sweep)."""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch

from .version import __version__
from .groundwork.arguments import as_list, as_number, as_path, as_str, require
from .groundwork.atomic import save_safetensors
from .groundwork.errors import TaskarithError, quote
from .groundwork.input_files import note_input, refuse_repeats
from .groundwork.safety import parse_json
from .models.base import Model

SCHEMA_VERSION = 1
_META_KEY = "taskarith"
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)  # the dtypes weights are kept in


@dataclass
class TaskVector:
    tensors: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        require("TaskVector", "tensors", self.tensors, dict, "a dict of parameter name to tensor")
        require("TaskVector", "meta", self.meta, dict, "a dict")
        for n, t in self.tensors.items():
            require("TaskVector", "tensors' keys", n, str, "parameter names (str)")
            require("TaskVector", f"tensors[{quote(n)}]", t, torch.Tensor, "a tensor")

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
        """The first difference that explains the rest: a paradigm kind or parameter set differs before its hash."""
        if self.linear != other.linear:
            raise TaskarithError(f"cannot combine linear and non-linear task vectors ({self.label()}, {other.label()})")
        presets = (self.meta.get("preset"), other.meta.get("preset"))
        if None not in presets and presets[0] != presets[1]:
            raise TaskarithError(f"task vectors {self.label()} and {other.label()} cover different parameters "
                                 f"(preset {quote(presets[0])} vs {quote(presets[1])})")
        if self.tensors.keys() != other.tensors.keys():
            extra = sorted(set(self.tensors) ^ set(other.tensors))[0]
            raise TaskarithError(f"task vectors {self.label()} and {other.label()} differ in parameter {extra!r}")
        if self.meta.get("base_hash") != other.meta.get("base_hash"):
            raise TaskarithError(
                f"task vectors {self.label()} and {other.label()} come from different bases "
                f"({self.meta.get('base_model')} {str(self.meta.get('base_hash'))[:12]} vs "
                f"{other.meta.get('base_model')} {str(other.meta.get('base_hash'))[:12]})"
            )
        for n, t in self.tensors.items():
            if t.shape != other.tensors[n].shape:
                raise TaskarithError(
                    f"{n}: shape {tuple(t.shape)} in {self.label()} vs {tuple(other.tensors[n].shape)} in "
                    f"{other.label()}"
                )
            if t.dtype != other.tensors[n].dtype:
                raise TaskarithError(f"{n}: dtype {t.dtype} in {self.label()} vs {other.tensors[n].dtype} in "
                                     f"{other.label()}")

    def _combined(self, other: "TaskVector", op: str) -> "TaskVector":
        self._check_compatible(other)
        combine_two = torch.add if op == "+" else torch.sub
        tensors = {n: combine_two(t, other.tensors[n]) for n, t in self.tensors.items()}
        check_finite(tensors, f"{self.label()} {op} {other.label()}", " (the values overflow their dtype)")
        meta = dict(self.meta)
        meta["task"] = f"{self.meta.get('task')}{op}{other.meta.get('task')}"
        return TaskVector(tensors, meta)

    # anything but a task vector (and the 0 that sum() starts from) is NotImplemented: Python's TypeError
    def __add__(self, other: "TaskVector | int") -> "TaskVector":
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return self._combined(other, "+") if isinstance(other, TaskVector) else NotImplemented

    __radd__ = __add__

    def __sub__(self, other: "TaskVector") -> "TaskVector":
        return self._combined(other, "-") if isinstance(other, TaskVector) else NotImplemented

    def __mul__(self, coef: float) -> "TaskVector":
        # int and float named too: the type checker does not know them as numbers.Real
        if isinstance(coef, bool) or not isinstance(coef, (int, float, numbers.Real)):
            return NotImplemented
        coef = as_number("TaskVector.__mul__", "coefficient", coef)
        tensors = {n: t * coef for n, t in self.tensors.items()}
        check_finite(tensors, f"{coef} · {self.label()}", " (the coefficient overflows their dtype)")
        return replace(self, tensors=tensors)

    __rmul__ = __mul__

    def __neg__(self) -> "TaskVector":
        return self * -1.0

    def _shared(self, other: "TaskVector") -> list[str]:
        """Names in both with equal shapes, sorted: sums then do not depend on the order tensors were stored in."""
        return sorted(n for n in self.tensors if n in other.tensors and self.tensors[n].shape == other.tensors[n].shape)

    def dot(self, other: "TaskVector") -> float:
        require("TaskVector.dot", "other", other, TaskVector, "a TaskVector")
        shared = self._shared(other)
        return float(sum(torch.sum(self.tensors[n].double() * other.tensors[n].double()) for n in shared))

    def norm(self, names: Sequence[str] | None = None) -> float:
        names = sorted(self.tensors if names is None else as_list("TaskVector.norm", "names", names, as_str, "str"))
        unknown = [n for n in names if n not in self.tensors]
        if unknown:
            raise TaskarithError(f"TaskVector.norm: task vector {self.label()} has no parameter {quote(unknown[0])}")
        return math.sqrt(float(sum(torch.sum(self.tensors[n].double() ** 2) for n in names)))

    def cosine(self, other: "TaskVector") -> float:
        """Cosine similarity over the parameters both vectors share."""
        require("TaskVector.cosine", "other", other, TaskVector, "a TaskVector")
        shared = self._shared(other)
        if not shared:
            raise TaskarithError(f"task vectors {self.label()} and {other.label()} share no parameter")
        denom = self.norm(shared) * other.norm(shared)
        return self.dot(other) / denom if denom > 0 else 0.0

    def numel(self) -> int:
        return sum(t.numel() for t in self.tensors.values())

    # --- base checks and application ------------------------------------------------------------
    def check_base(self, model: Model) -> None:
        require("TaskVector.check_base", "model", model, Model, "a Model (taskarith.load_model)")
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
        path = as_path("TaskVector.save", "path", path)
        meta = {"schema": SCHEMA_VERSION, "taskarith_version": __version__, **self.meta}
        save_safetensors(path, self.tensors, {_META_KEY: json.dumps(meta, sort_keys=True)})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TaskVector":
        from .groundwork.tensor_files import read_safetensors

        path = as_path("TaskVector.load", "path", path)
        tensors, header = read_safetensors(path)
        note_input(path)
        meta = vector_meta(path, header)
        if not tensors:
            raise TaskarithError(f"{path}: the task vector holds no tensors")
        for n, t in tensors.items():
            if t.dtype not in FLOAT_DTYPES:
                raise TaskarithError(f"{path}: tensor {n!r} has dtype {t.dtype}; expected float16, bfloat16, "
                                     f"float32 or float64")
        check_finite(tensors, str(path))
        if not any(bool(t.any()) for t in tensors.values()):
            # merged or applied, it would silently change nothing
            raise TaskarithError(f"{path}: the task vector is zero everywhere")
        return cls(tensors, meta)


def check_finite(tensors: Mapping[str, torch.Tensor], what: str, cause: str = "") -> None:
    """Refuse Inf or NaN in a vector read or computed, before anyone applies or writes it."""
    for n, t in tensors.items():
        if not torch.isfinite(t).all():
            raise TaskarithError(f"{what}: tensor {n!r} holds NaN or Inf{cause}")


def load_vectors(sources: Sequence["TaskVector | str | os.PathLike[str]"], where: str = "merge") -> list[TaskVector]:
    """Task vectors given as vectors or files; one file named twice is refused before any is read."""
    refuse_repeats([s for s in sources if isinstance(s, (str, os.PathLike))], f"{where}: task vectors")
    return [s if isinstance(s, TaskVector) else TaskVector.load(s) for s in sources]


def vector_meta(path: str | Path, header: Mapping[str, str]) -> dict:
    """A task vector file's metadata from its safetensors header, checked: present, JSON, a known schema."""
    if _META_KEY not in header:
        raise TaskarithError(f"{path}: not a taskarith task vector (no '{_META_KEY}' metadata)")
    meta = parse_json(header[_META_KEY], f"{path}: task-vector metadata", problem="not valid JSON")
    schema = meta.get("schema") if isinstance(meta, dict) else None
    # an int, not a bool or float that equals one
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise TaskarithError(f"{path}: task-vector schema {quote(schema)} is not supported "
                             f"(expected {SCHEMA_VERSION})")
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
