"""`merge_vectors`: task vectors of one base and paradigm merged in memory by a registered method, through the
one per-tensor loop (tensor_loop.py) that the export streams through as well, and the checks both run first."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch

from ..groundwork.arguments import as_int, as_list, as_real, as_str, require
from ..groundwork.errors import TaskarithError, quote
from ..groundwork.tensor_files import named_digest
from ..paradigms import PARADIGMS
from ..vectors import TaskVector, check_compatible, check_finite
from . import adamerging, fisher, regmean, rules, spectral
from .data import MergeData
from .methods import WEIGHTS, MergeMethod, check_settings, merge_method, needs_data
from .tensor_loop import merged_tensors, work_dtype

# the modules the registry's rules and measures live in, imported by name: a run's stage digests the code it
# imports, so a changed rule computes its merges again
RULE_MODULES = {module.__name__.rpartition(".")[2]: module for module in (adamerging, fisher, regmean, rules, spectral)}
# what a merged vector keeps of its inputs' metadata: the base and parameter set they share (checked equal)
SHARED_META = ("base_model", "base_hash", "paradigm", "preset", "posthoc_of")


def loaded(function: str) -> Callable:
    """The rule or measure a registry record names as MODULE.FUNCTION."""
    module, _, name = function.partition(".")
    return getattr(RULE_MODULES[module], name)


def check_merge(name: str, count: int, settings: Mapping[str, object] | None = None, *, seed: int = 0,
                weights: Sequence[float] | None = None, data: MergeData | None = None,
                where: str = "merge") -> tuple[MergeMethod, dict]:
    """The method and the keywords its rule is called with (every setting, and the weights where it takes
    them), checked for `count` task vectors before any is read; `where` names the settings' source in an error.
    A method that reads data takes it from `data`, one entry per vector; the others must do without."""
    method = merge_method(as_str(where, "method", name))
    seed = as_int(where, "seed", seed)
    require(where, "data", data, (MergeData, type(None)), "a MergeData or None")
    if method.needs != "vectors":
        if data is None:
            raise needs_data(method)
        data.check(count, method.needs, name)
    if not 0 <= seed < 2**63:  # torch's generators take a 64-bit seed
        raise TaskarithError(f"{where}: seed must lie in [0, 2**63), got {seed}")
    if count == 0:
        raise TaskarithError("nothing to merge: no task vectors given")
    keywords = check_settings(name, settings or {}, where)
    if weights is not None:
        keywords[WEIGHTS] = _checked_weights(method, weights, count)
    elif method.takes_weights:
        keywords[WEIGHTS] = None
    return method, keywords


def _checked_weights(method: MergeMethod, weights: Sequence[float], count: int) -> list[float]:
    weights = as_list("merge", "weights", weights, as_real, "numbers")
    if not method.takes_weights:
        raise TaskarithError(f"{method.name} takes no per-vector weights")
    if len(weights) != count:
        raise TaskarithError(f"weights: {len(weights)} given for {count} task vectors; give one per vector")
    if not all(math.isfinite(w) for w in weights):
        raise TaskarithError(f"merge weights must be finite numbers, got {quote(weights)}")
    return weights


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """The digest of a dict of tensors, the one a model's θ0 hash uses (name order, so storage order is moot)."""
    return named_digest(tensors, tensors.__getitem__)


def provenance(vectors: Sequence[TaskVector], method: MergeMethod, params: Mapping) -> dict:
    """The merged vector's metadata: the base and parameter set the inputs share, the method with what it read,
    and each input's task and tensor hash; never one input's training record."""
    tasks = [tv.meta.get("task") for tv in vectors]
    shared = {k: vectors[0].meta[k] for k in SHARED_META if k in vectors[0].meta}
    return {**shared, "task": f"{method.name}(" + "+".join(map(str, tasks)) + ")",
            "merge": {"method": method.name, "params": dict(params), "tasks": tasks,
                      "inputs": [{"task": tv.meta.get("task"), "sha256": tensors_sha256(tv.tensors)}
                                 for tv in vectors]}}


def merge_vectors(vectors: Sequence[TaskVector], method: str, *, seed: int = 0,
                  weights: Sequence[float] | None = None, data: MergeData | None = None, **settings) -> TaskVector:
    """τ_merged[p] = rule(τ_1[p], …, τ_T[p]) for each parameter p of task vectors of one base and paradigm, with
    any setting of the method by name (`taskarith methods` lists them). `weights` gives each vector its w_t,
    `seed` DARE's drops and the examples a data method reads; `data` is what such a method reads. The result's
    metadata records the settings, and the weights, seed and data settings where the method reads them."""
    as_list("merge", "vectors", vectors, _vector, "TaskVectors")
    record, keywords = check_merge(method, len(vectors), settings, seed=seed, weights=weights, data=data)
    check_compatible(vectors)
    _check_paradigm(vectors, record)
    statistics = loaded(record.measure)(vectors, data, seed) if record.measure is not None else {}
    first = vectors[0].tensors

    def read(name: str, stack: torch.Tensor) -> None:
        for t, tv in enumerate(vectors):
            stack[t].copy_(tv.tensors[name])

    def shape(name: str) -> tuple[tuple[int, ...], torch.dtype]:
        return (len(vectors), *first[name].shape), work_dtype(first[name].dtype)

    tensors = {name: merged.to(first[name].dtype) for name, merged in merged_tensors(
        list(first), read, shape, loaded(record.rule), keywords, seed, statistics=statistics)}
    check_finite(tensors, f"the {method} merge of {len(vectors)} task vectors", _overflow(keywords.get(WEIGHTS)))
    if not any(bool(t.any()) for t in tensors.values()):
        # τ and −τ summed, or signs that cancel everywhere: applying it would silently be θ0
        raise TaskarithError(f"the {method} merge of {len(vectors)} task vectors is zero everywhere; nothing to apply")
    measured = data.settings.model_dump() if record.measure and data is not None else {}
    read_too = ({"seed": seed} if record.draws else {}) | measured
    return TaskVector(tensors, provenance(vectors, record, keywords | read_too))


def _vector(where: str, name: str, value: Any) -> TaskVector:
    return require(where, name, value, TaskVector, "a TaskVector")


def _overflow(weights: Sequence[float] | None) -> str:
    """Why a merge of finite vectors holds Inf or NaN: its weights, or values near their dtype's limit."""
    if weights is not None:
        return f" (weights {quote(weights)} overflow the vectors' dtype; use smaller weights)"
    return " (the vectors' values overflow their dtype)"


def _check_paradigm(vectors: Sequence[TaskVector], method: MergeMethod) -> None:
    """One paradigm for all vectors, and one the method is defined for."""
    paradigms = sorted({str(tv.meta.get("paradigm")) for tv in vectors})
    if len(paradigms) > 1:
        raise TaskarithError(f"cannot merge task vectors of different paradigms ({', '.join(paradigms)})")
    if paradigms[0] in PARADIGMS and paradigms[0] not in method.paradigms:
        raise TaskarithError(f"{method.label} is not defined for {paradigms[0]} task vectors; it is defined for "
                             f"the {', '.join(method.paradigms)} paradigms")
