"""The merge methods: the one registry that the run, the CLI, the export and the report read, and the one check
of a method's settings that each of them passes its settings through.

The merged vector is a task vector like any other: θ0 + α·τ_merged, with one α chosen on validation from the
method's own grid. Adding a method is one record here and one rule function; a method that reads data (Fisher,
RegMean, AdaMerging) adds the function that measures its per-task statistics on that data.

A method's settings are its rule's keyword-only parameters, each with its kind as the annotation and a literal
default (`ties(stack, *, density: Density = 0.2, ...)`), read from the rule's source: this module imports no
rule and no torch (merge.py runs the rules).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping

from ..groundwork.errors import TaskarithError, quote, unknown
from ..paradigms import PARADIGMS
from .kinds import checked
from .signatures import NO_DEFAULT, Keyword, keywords

# what a method reads besides the task vectors, as `taskarith methods` words it
NEEDS = {"vectors": "task vectors only (data-free)", "train": "training data",
         "test-inputs": "unlabeled test inputs (transductive)"}
# what the merge loop (tensor_loop.merged_tensors) hands every rule, so none of them is a setting
LOOP_KEYWORDS = ("generator", "statistic", "overwrite")
WEIGHTS = "weights"  # the per-vector weights a rule takes: given with the inputs, not as a setting


@dataclass(frozen=True)
class MergeMethod:
    name: str
    label: str  # how tables name it
    reference: str  # paper, venue and year
    needs: str  # a key of NEEDS
    paradigms: tuple[str, ...]  # the paradigms it is defined for
    alphas: tuple[float, ...]  # its default α grid, sorted, in [0, config.MAX_ALPHA]
    scale: float  # its canonical α, the one its paper applies; on the grid
    rule: str  # MODULE.FUNCTION of this package: stacked [T, ...] -> merged [...]; settings and generator= by keyword
    # a method that reads data first measures, per parameter, one statistic per task [T, ...] (a Fisher, a
    # Gram matrix, a learned coefficient): (vectors, MergeData, seed) -> {name: statistic}; its rule then
    # gets the parameter's statistic as statistic= (None for a parameter the measure leaves out)
    measure: str | None = None

    @property
    def settings(self) -> dict[str, object]:
        """Each setting's name and default, in the rule's order."""
        return {name: keyword.default for name, keyword in _settings(self.rule).items()}

    @property
    def takes_weights(self) -> bool:
        return WEIGHTS in keywords(self.rule)

    @property
    def draws(self) -> bool:
        """Whether the seed decides its result: its rule draws at random, or its measure picks examples."""
        return "generator" in keywords(self.rule) or self.measure is not None


@functools.cache
def _settings(rule: str) -> dict[str, Keyword]:
    """The rule's keywords that are settings; each must name its kind and have a literal default."""
    found = {n: k for n, k in keywords(rule).items() if n not in LOOP_KEYWORDS and n != WEIGHTS}
    for keyword in found.values():
        keyword.kind()  # raises where the annotation names no kind
        if keyword.default is NO_DEFAULT:
            raise ValueError(f"{rule}: setting {keyword.name} has no default")
    return found


ALL = tuple(PARADIGMS)  # a rule that only transforms vectors is defined in every paradigm
# Fisher and RegMean read the fine-tuned weights θ0 + τ themselves, which a linearized vector does not stand for
OWN_WEIGHTS = tuple(name for name, p in PARADIGMS.items() if not p.linear)
SUM_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0)  # a sum of T vectors: α near 1/T
MEAN_GRID = tuple(0.25 * i for i in range(1, 13))  # a mean or an SVD recombination: α near 1 and above

# the baseline first, then the order `taskarith methods` lists and error messages name them in. Canonical α:
# the TIES paper's choices without a validation set (0.4 for the sum, 1 for TIES); the rest apply as merged (1)
MERGE_METHODS: dict[str, MergeMethod] = {m.name: m for m in (
    MergeMethod("task_arithmetic", "Task arithmetic", "Ilharco et al., ICLR 2023", "vectors", ALL, SUM_GRID,
                0.4, "rules.task_arithmetic"),
    MergeMethod("ties", "TIES", "Yadav et al., NeurIPS 2023", "vectors", ALL, MEAN_GRID, 1.0, "rules.ties"),
    MergeMethod("dare", "DARE", "Yu et al., ICML 2024", "vectors", ALL, SUM_GRID, 1.0, "rules.dare"),
    MergeMethod("dare_ties", "DARE + TIES", "Yu et al., ICML 2024", "vectors", ALL, MEAN_GRID, 1.0,
                "rules.dare_ties"),
    MergeMethod("weight_averaging", "Weight averaging", "Wortsman et al., ICML 2022", "vectors", ALL, MEAN_GRID,
                1.0, "rules.weight_averaging"),
    MergeMethod("tsv_m", "TSV-M", "Gargiulo et al., CVPR 2025", "vectors", ALL, MEAN_GRID, 1.0, "spectral.tsv_m"),
    MergeMethod("iso_c", "Iso-C", "Marczak et al., ICML 2025", "vectors", ALL, MEAN_GRID, 1.0, "spectral.iso_c"),
    MergeMethod("iso_cts", "Iso-CTS", "Marczak et al., ICML 2025", "vectors", ALL, MEAN_GRID, 1.0,
                "spectral.iso_cts"),
    MergeMethod("fisher", "Fisher merging", "Matena & Raffel, NeurIPS 2022", "train", OWN_WEIGHTS, MEAN_GRID,
                1.0, "fisher.fisher_weighted", "fisher.task_fishers"),
    MergeMethod("regmean", "RegMean", "Jin et al., ICLR 2023", "train", OWN_WEIGHTS, MEAN_GRID, 1.0,
                "regmean.regmean", "regmean.task_grams"),
    # its coefficients are learned, so its scale is not searched again: a grid of one point
    MergeMethod("adamerging", "AdaMerging (layer-wise)", "Yang et al., ICLR 2024", "test-inputs", ALL, (1.0,),
                1.0, "adamerging.coefficient_sum", "adamerging.layer_coefficients"),
)}
BASELINE = "task_arithmetic"  # the plain sum every run scores; `eval.merges` names the others


def merge_method(name: str) -> MergeMethod:
    if name not in MERGE_METHODS:
        raise unknown("merge method", name, MERGE_METHODS)
    return MERGE_METHODS[name]


def needs_data(method: MergeMethod) -> TaskarithError:
    """The error for a method that reads data, asked to merge from task vectors alone."""
    return TaskarithError(f"{method.name} needs {NEEDS[method.needs]}, so it cannot merge from task vectors alone")


def setting_names() -> set[str]:
    """Every name that is a setting of some method."""
    return {name for method in MERGE_METHODS.values() for name in method.settings}


def check_settings(method: str, given: Mapping[str, object], where: str) -> dict[str, object]:
    """Every setting of the method: the given ones checked against their kinds, the rest at their defaults. The
    one check of settings, whoever gives them (a run config, `vector merge`, a recipe, the Python API); an
    error names `where` they came from, the setting and its value, and the method a setting is not one of."""
    record = merge_method(method)
    specs = _settings(record.rule)
    for name, value in given.items():
        if name not in specs:
            raise _not_a_setting(record, name, value, where)
    return {name: checked(spec.kind(), where, name, given[name]) if name in given else spec.default
            for name, spec in specs.items()}


def _not_a_setting(method: MergeMethod, name: object, value: object, where: str) -> TaskarithError:
    owners = [m.name for m in MERGE_METHODS.values() if name in m.settings]
    if not owners:
        known = list(method.settings) or ["none"]
        return TaskarithError(f"{where}: {unknown(f'setting of {method.name}', name, known)}")
    return TaskarithError(f"{where}: {name} = {quote(value)} is not a setting of {method.name} (its settings: "
                          f"{', '.join(method.settings) or 'none'}); it is a setting of {', '.join(owners)}")
