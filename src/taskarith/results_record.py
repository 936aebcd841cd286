"""The shape of results.json (docs/results-schema.md) as types a checker follows: the run builds its record
from these, and a reader of one meets the same names. Types only, below every layer that writes or reads a
record. An optional key sits in a `total=False` base class, which every supported Python reads the same way.

Accuracies are fractions in [0, 1]; seeds, α values and rates are keys as strings (α as f"{alpha:g}")."""

from __future__ import annotations

from typing import Any, TypedDict, Union, final

TaskScores = dict[str, float]  # task -> accuracy


class Splits(TypedDict):
    """Accuracy per task on validation and on test: θ0's, or each task's own fine-tuned model's."""

    val: TaskScores
    test: TaskScores


class _TestPoint(TypedDict, total=False):  # with eval.test_curve (the default)
    test_abs: float
    test_norm: float


class CurvePoint(_TestPoint):
    val_abs: float
    val_norm: float


@final  # final, so that a check for "not_applicable" tells the two kinds of merge result apart
class Sweep(TypedDict):
    """θ0 + α·τ over an α grid: α chosen on validation (`alpha_ties` grid points share its score), test
    accuracies at that α."""

    alpha: float
    alpha_ties: int
    curve: dict[str, CurvePoint]  # by α
    test: TaskScores
    absolute: float
    normalized: float


@final
class NotApplicable(TypedDict):
    not_applicable: str  # why a merge method is not defined for the paradigm


MergeResult = Union[Sweep, NotApplicable]


class Negation(TypedDict):
    control_task: str
    alpha: float
    target: float  # test accuracy at the chosen α
    control: float
    pretrained_target: float
    pretrained_control: float


class _LaterTraining(TypedDict, total=False):  # absent for vectors trained before it was measured
    median_seconds_per_step: float
    memory_increase_bytes: float


class Training(_LaterTraining):
    """A fine-tune's cost as its vector's metadata recorded it, and its step count."""

    steps_this_session: int
    seconds: float
    seconds_per_step: float
    peak_memory_bytes: float
    memory_kind: str
    steps: int


class _Merges(TypedDict, total=False):  # with eval.merges
    merges: dict[str, MergeResult]  # by method


class Evaluation(_Merges):
    """What the `evaluate` stage measures of one seed's vectors."""

    individual: Splits
    addition: Sweep


class NegationPart(TypedDict, total=False):  # the first seed only, with eval.negation and two or more tasks
    negation: dict[str, Negation]  # by negated task


class SeedResult(Evaluation, NegationPart):
    """One seed of a paradigm (or ablation preset): its evaluation, negation, fine-tuning costs and vector files."""

    training: dict[str, Training]  # by task
    vectors: dict[str, str]  # by task: the file, relative to the run folder


class Selection(TypedDict):
    """The parameters a preset trains."""

    preset: str
    count: int
    total: int
    share: float


class MeanStd(TypedDict):
    mean: float
    std: float  # population std (ddof 0) over seeds


class TaskSummary(TypedDict):
    individual: MeanStd
    unified: MeanStd


@final
class MergeMeans(TypedDict):
    absolute: MeanStd
    normalized: MeanStd


MergeSummary = Union[MergeMeans, NotApplicable]


class Summary(TypedDict):
    """Over seeds: the headline numbers and per-task accuracies."""

    absolute: MeanStd
    normalized: MeanStd
    individual: MeanStd
    per_task: dict[str, TaskSummary]
    merges: dict[str, MergeSummary]


class _Rate(TypedDict, total=False):  # a paradigm's; not an ablation preset's, nor in runs before lr_search
    lr: float


class EntryHead(_Rate):
    """An entry's fixed fields, known before any seed runs."""

    label: str
    preset: str


class ParadigmEntry(EntryHead):
    """A paradigm's entry over its seeds; an ablation preset's has the same shape."""

    seeds: dict[str, SeedResult]
    selection: Selection
    summary: Summary


class LrSearch(TypedDict):
    validation: dict[str, float]  # by candidate rate: mean individual validation accuracy
    chosen: float


class ModelInfo(TypedDict):
    family: str
    name: str
    base_hash: str
    parameters: int


class TaskInfo(TypedDict):
    classes: list[str]
    templates: list[str]
    sizes: dict[str, Any]  # train, val, test: counts; available, caps: by split


class Similarity(TypedDict):
    tasks: list[str]
    matrix: list[list[float]]
    mean_off_diagonal: float


class Efficiency(TypedDict):
    total_parameters: int
    trainable_parameters: int
    trainable_share: float
    peak_memory_bytes: int  # the largest over the paradigm's tasks
    memory_increase_bytes: int | None  # None where a vector predates its measurement
    memory_kind: str
    seconds_per_step: float
    total_seconds: float
    vector_bytes: int


class Advantage(TypedDict):
    per_task: dict[str, float]  # non-linear's individual accuracy minus the paradigm's
    mean: float


class KernelTask(TypedDict):
    model: float
    posthoc_linear: float


class Kernel(TypedDict):
    per_task: dict[str, KernelTask]
    mean_gap: float


class Analysis(TypedDict, total=False):
    """Each analysis the config switches on, by paradigm; empty in a run without the first seed."""

    similarity: dict[str, Similarity]
    efficiency: dict[str, Efficiency]
    advantage: dict[str, Advantage]
    kernel: dict[str, Kernel]
    disentangle: dict[str, dict[str, Any]]  # by task pair: "grid", then one ξ entry per paradigm
    ablation: dict[str, ParadigmEntry]  # by preset


class SeedTimings(TypedDict):
    finetune_seconds: float
    evaluate_seconds: float


class SearchSecondsPart(TypedDict, total=False):  # with lr_search
    lr_search_seconds: float


class Timings(SearchSecondsPart):
    finetune_seconds: float
    evaluate_seconds: float
    per_seed: dict[str, SeedTimings]
    analysis_seconds: float
    total_seconds: float


class LrSearchPart(TypedDict, total=False):  # with lr_search
    lr_search: dict[str, LrSearch]  # by paradigm


class ResultsRecord(LrSearchPart):
    """results.json of one run."""

    schema: int
    taskarith_version: str
    git_commit: str | None
    created: str
    config: dict[str, Any]  # the validated ExperimentConfig
    model: ModelInfo
    seeds: list[int]
    tasks: dict[str, TaskInfo]
    pretrained: Splits
    paradigms: dict[str, ParadigmEntry]
    analysis: Analysis
    timings: Timings
