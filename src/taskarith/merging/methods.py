"""The merge methods: the one registry that the run, the CLI and the report read, and `merge_vectors`.

The merged vector is a task vector like any other: θ0 + α·τ_merged, with one α chosen on validation from the
method's own grid. Adding a method is one record here and one rule function; a method that reads data (Fisher,
RegMean, AdaMerging) adds the function that measures its per-task statistics on that data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from ..arguments import as_int, as_list, as_number, as_real, as_str, require
from ..errors import TaskarithError, quote
from ..paradigms import PARADIGMS
from ..tensor_files import named_digest
from ..vectors import TaskVector, check_compatible, check_finite
from .adamerging import coefficient_sum, layer_coefficients
from .data import MergeData
from .fisher import fisher_weighted, task_fishers
from .regmean import regmean, task_grams
from .rules import SIGN_METHODS, dare, dare_ties, task_arithmetic, ties, weight_averaging
from .spectral import COMMON_SHARE, iso_c, iso_cts, tsv_m
from .tensor_loop import merged_tensors, work_dtype

# what a method reads besides the task vectors, as `taskarith merges` words it
NEEDS = {"vectors": "task vectors only (data-free)", "train": "training data",
         "test-inputs": "unlabeled test inputs (transductive)"}


@dataclass(frozen=True)
class MergeMethod:
    name: str
    label: str  # how tables name it
    reference: str  # paper, venue and year
    needs: str  # a key of NEEDS
    paradigms: tuple[str, ...]  # the paradigms it is defined for
    alphas: tuple[float, ...]  # its default α grid, sorted, in [0, config.MAX_ALPHA]
    scale: float  # its canonical α, the one its paper applies; on the grid
    params: tuple[str, ...]  # the merge_vectors settings its rule reads, recorded in the merged vector
    rule: Callable[..., torch.Tensor]  # stacked [T, ...] -> merged [...]; settings and generator= by keyword
    # a method that reads data first measures, per parameter, one statistic per task [T, ...] (a Fisher, a
    # Gram matrix, a learned coefficient): (vectors, MergeData, seed) -> {name: statistic}; its rule then
    # gets the parameter's statistic as statistic= (None for a parameter the measure leaves out)
    measure: Callable[..., dict[str, torch.Tensor]] | None = None


ALL = tuple(PARADIGMS)  # a rule that only transforms vectors is defined in every paradigm
# Fisher and RegMean read the fine-tuned weights θ0 + τ themselves, which a linearized vector does not stand for
OWN_WEIGHTS = tuple(name for name, p in PARADIGMS.items() if not p.linear)
SUM_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0)  # a sum of T vectors: α near 1/T
MEAN_GRID = tuple(0.25 * i for i in range(1, 13))  # a mean or an SVD recombination: α near 1 and above

# the baseline first, then the order `taskarith merges` lists and error messages name them in. Canonical α:
# the TIES paper's choices without a validation set (0.4 for the sum, 1 for TIES); the rest apply as merged (1)
MERGE_METHODS: dict[str, MergeMethod] = {m.name: m for m in (
    MergeMethod("task_arithmetic", "Task arithmetic", "Ilharco et al., ICLR 2023", "vectors", ALL, SUM_GRID,
                0.4, ("weights",), task_arithmetic),
    MergeMethod("ties", "TIES", "Yadav et al., NeurIPS 2023", "vectors", ALL, MEAN_GRID, 1.0,
                ("density", "weights", "majority_sign_method"), ties),
    MergeMethod("dare", "DARE", "Yu et al., ICML 2024", "vectors", ALL, SUM_GRID, 1.0,
                ("density", "seed", "weights"), dare),
    MergeMethod("dare_ties", "DARE + TIES", "Yu et al., ICML 2024", "vectors", ALL, MEAN_GRID, 1.0,
                ("density", "seed", "weights", "majority_sign_method"), dare_ties),
    MergeMethod("weight_averaging", "Weight averaging", "Wortsman et al., ICML 2022", "vectors", ALL, MEAN_GRID,
                1.0, ("weights",), weight_averaging),
    MergeMethod("tsv_m", "TSV-M", "Gargiulo et al., CVPR 2025", "vectors", ALL, MEAN_GRID, 1.0, (), tsv_m),
    MergeMethod("iso_c", "Iso-C", "Marczak et al., ICML 2025", "vectors", ALL, MEAN_GRID, 1.0, (), iso_c),
    MergeMethod("iso_cts", "Iso-CTS", "Marczak et al., ICML 2025", "vectors", ALL, MEAN_GRID, 1.0,
                ("common_share",), iso_cts),
    MergeMethod("fisher", "Fisher merging", "Matena & Raffel, NeurIPS 2022", "train", OWN_WEIGHTS, MEAN_GRID,
                1.0, ("fisher_examples", "seed"), fisher_weighted, task_fishers),
    MergeMethod("regmean", "RegMean", "Jin et al., ICLR 2023", "train", OWN_WEIGHTS, MEAN_GRID, 1.0,
                ("regmean_examples", "batch_size", "off_diagonal", "seed"), regmean, task_grams),
    # its coefficients are learned, so its scale is not searched again: a grid of one point
    MergeMethod("adamerging", "AdaMerging (layer-wise)", "Yang et al., ICLR 2024", "test-inputs", ALL, (1.0,),
                1.0, ("steps", "lr", "init", "batch_size", "seed"), coefficient_sum, layer_coefficients),
)}
BASELINE = "task_arithmetic"  # the plain sum every run scores; `eval.merges` names the others
RULE_SETTINGS = ("density", "weights", "majority_sign_method", "common_share", "off_diagonal")  # rules' keywords
# what a merged vector keeps of its inputs' metadata: the base and parameter set they share (checked equal)
SHARED_META = ("base_model", "base_hash", "paradigm", "preset", "posthoc_of")


def merge_method(name: str) -> MergeMethod:
    if name not in MERGE_METHODS:
        raise TaskarithError(f"unknown merge rule {quote(name)}; known: {', '.join(MERGE_METHODS)}")
    return MERGE_METHODS[name]


def data_free(name: str) -> MergeMethod:
    """The method, which must merge from task vectors alone."""
    method = merge_method(name)
    if method.needs != "vectors":
        raise TaskarithError(f"{name} needs {NEEDS[method.needs]}, so it cannot merge from task vectors alone")
    return method


def check_merge(name: str, count: int, *, density: float = 0.2, seed: int = 0,
                weights: Sequence[float] | None = None, majority_sign_method: str = "total",
                common_share: float = COMMON_SHARE, data: MergeData | None = None) -> tuple[MergeMethod, dict]:
    """The method and its settings, checked for `count` task vectors before any is read. A method that reads
    data takes it from `data`, one entry per vector; the others must do without."""
    method = merge_method(as_str("merge", "method", name))
    density, seed = as_number("merge", "density", density), as_int("merge", "seed", seed)
    common_share = as_number("merge", "common_share", common_share)
    as_str("merge", "majority_sign_method", majority_sign_method)
    require("merge", "data", data, (MergeData, type(None)), "a MergeData or None")
    if method.needs != "vectors":
        if data is None:
            data_free(name)  # raises: what it needs, named
        data.check(count, method.needs, name)
    if not 0 < density <= 1:
        raise TaskarithError(f"merge density must lie in (0, 1], got {density}")
    if not 0 <= seed < 2**63:  # torch's generators take a 64-bit seed
        raise TaskarithError(f"merge seed must lie in [0, 2**63), got {seed}")
    if count == 0:
        raise TaskarithError("nothing to merge: no task vectors given")
    if majority_sign_method not in SIGN_METHODS:
        raise TaskarithError(f"majority sign method must be one of {', '.join(SIGN_METHODS)}, "
                             f"got {quote(majority_sign_method)}")
    if majority_sign_method != "total" and "majority_sign_method" not in method.params:
        raise TaskarithError(f"{name} elects no sign; a majority sign method applies to "
                             + ", ".join(m.name for m in MERGE_METHODS.values() if "majority_sign_method" in m.params))
    if weights is not None:
        weights = _checked_weights(method, weights, count)
    settings = {"density": density, "seed": seed, "weights": weights, "majority_sign_method": majority_sign_method,
                "common_share": common_share}
    return method, settings | (data.settings.model_dump() if data is not None else {})


def _checked_weights(method: MergeMethod, weights: Sequence[float], count: int) -> list[float]:
    weights = as_list("merge", "weights", weights, as_real, "numbers")
    if "weights" not in method.params:
        raise TaskarithError(f"{method.name} takes no per-vector weights")
    if len(weights) != count:
        raise TaskarithError(f"weights: {len(weights)} given for {count} task vectors; give one per vector")
    if not all(math.isfinite(w) for w in weights):
        raise TaskarithError(f"merge weights must be finite numbers, got {quote(weights)}")
    return weights


def rule_settings(settings: Mapping) -> dict:
    """The settings of `check_merge` that rules read by keyword."""
    return {k: settings[k] for k in RULE_SETTINGS if k in settings}


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """The digest of a dict of tensors, the one a model's θ0 hash uses (name order, so storage order is moot)."""
    return named_digest(tensors, tensors.__getitem__)


def provenance(vectors: Sequence[TaskVector], method: MergeMethod, settings: Mapping) -> dict:
    """The merged vector's metadata: the base and parameter set the inputs share, the method with the settings
    it read, and each input's task and tensor hash; never one input's training record."""
    tasks = [tv.meta.get("task") for tv in vectors]
    shared = {k: vectors[0].meta[k] for k in SHARED_META if k in vectors[0].meta}
    return {**shared, "task": f"{method.name}(" + "+".join(map(str, tasks)) + ")",
            "merge": {"method": method.name, "params": {p: settings[p] for p in method.params}, "tasks": tasks,
                      "inputs": [{"task": tv.meta.get("task"), "sha256": tensors_sha256(tv.tensors)}
                                 for tv in vectors]}}


def merge_vectors(vectors: Sequence[TaskVector], method: str, *, density: float = 0.2, seed: int = 0,
                  weights: Sequence[float] | None = None, majority_sign_method: str = "total",
                  common_share: float = COMMON_SHARE, data: MergeData | None = None) -> TaskVector:
    """τ_merged[p] = rule(τ_1[p], …, τ_T[p]) for each parameter p of task vectors of one base and paradigm.
    `weights` gives each vector its w_t, `seed` DARE's drops and the examples a data method reads; `data` is
    what such a method reads. Settings a method does not read are not recorded in the result's metadata."""
    as_list("merge", "vectors", vectors, _vector, "TaskVectors")
    record, settings = check_merge(method, len(vectors), density=density, seed=seed, weights=weights,
                                   majority_sign_method=majority_sign_method, common_share=common_share, data=data)
    check_compatible(vectors)
    _check_paradigm(vectors, record)
    statistics = record.measure(vectors, data, seed) if record.measure is not None else {}
    first = vectors[0].tensors

    def read(name: str, stack: torch.Tensor) -> None:
        for t, tv in enumerate(vectors):
            stack[t].copy_(tv.tensors[name])

    def shape(name: str) -> tuple[tuple[int, ...], torch.dtype]:
        return (len(vectors), *first[name].shape), work_dtype(first[name].dtype)

    tensors = {name: merged.to(first[name].dtype) for name, merged in merged_tensors(
        list(first), read, shape, record.rule, rule_settings(settings), seed, statistics=statistics)}
    check_finite(tensors, f"the {method} merge of {len(vectors)} task vectors", _overflow(settings["weights"]))
    if not any(bool(t.any()) for t in tensors.values()):
        # τ and −τ summed, or signs that cancel everywhere: applying it would silently be θ0
        raise TaskarithError(f"the {method} merge of {len(vectors)} task vectors is zero everywhere; nothing to apply")
    return TaskVector(tensors, provenance(vectors, record, settings))


def _vector(where: str, name: str, value: object) -> TaskVector:
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
