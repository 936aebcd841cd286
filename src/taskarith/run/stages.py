"""The stages of one paradigm (or ablation preset) for one seed: fine-tune every task, evaluate the vectors,
negate them. Each stage is a function of explicit inputs that leaves its artifact in the run folder: the
vector files, then stages/seedS/LABEL/{evaluate,negate}.json."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, cast

from ..results_record import (EntryHead, Evaluation, Negation, NegationPart, ParadigmEntry, SeedResult,
                              Selection, Splits, Training)
from ..vectors import TaskVector
from .artifacts import EVALUATE, NEGATE, run_stage, stage_inputs
from .experiment import Experiment
from .protocol import evaluate_vectors, negate_each
from .seeds import FIRST_SEED
from .summary import summarize
from .finetunes import Unit, trained_vector, unit_label, unit_vector_file


@dataclass(frozen=True)
class SeedRun:
    """What one seed of a paradigm produced: its results.json record, the parameters its vectors train, and
    its cost. Not its vectors: nothing reads them from memory once they are evaluated (and negated)."""

    result: SeedResult
    selection: Selection
    finetune_seconds: float
    evaluate_seconds: float


def _stage(exp: Experiment, units: Sequence[Unit], name: str, **extra) -> tuple[str, dict]:
    """The artifact's name, stages/seedS/LABEL/NAME with the units' label, and its inputs: their vector files."""
    files = {u.task: unit_vector_file(exp, u) for u in units}
    folder = f"seed{units[0].seed}/{unit_label(exp, units[0])}"
    return f"{folder}/{name}", stage_inputs(exp, files, **extra)


def evaluate_stage(exp: Experiment, units: Sequence[Unit], vectors: Mapping[str, TaskVector]) -> Evaluation:
    """Individual, addition and merges (stage `evaluate`)."""
    name, inputs = _stage(exp, units, "evaluate", reads=EVALUATE)
    return run_stage(exp, name, inputs, lambda: evaluate_vectors(exp, vectors, units[0].seed))


def negates(exp: Experiment, seed: int) -> bool:
    """Negation is a protocol check, not a claim compared over seeds: the first seed only."""
    return exp.cfg.eval.negation and len(exp.tasks) > 1 and seed == FIRST_SEED


def negate_stage(exp: Experiment, units: Sequence[Unit], vectors: Mapping[str, TaskVector],
                 pretrained: Splits) -> dict[str, Negation]:
    """Negation of each vector (stage `negate`), where `negates(exp, seed)`."""
    name, inputs = _stage(exp, units, "negate", reads=NEGATE, pretrained=pretrained)
    return run_stage(exp, name, inputs, lambda: negate_each(exp, vectors, pretrained))


def run_seed(exp: Experiment, units: Sequence[Unit], pretrained: Splits) -> SeedRun:
    """Fine-tune (or reuse) every unit of one seed, then evaluate the vectors; they are let go on return, so a
    run holds one seed's vectors at a time (at scale, each seed's are GBs)."""
    started = time.perf_counter()
    vectors = {u.task: trained_vector(exp, u) for u in units}
    trained = time.perf_counter()
    exp.log(f"evaluating {units[0].paradigm if units[0].preset is None else units[0].preset} (seed {units[0].seed})")
    evaluation = evaluate_stage(exp, units, vectors)
    negation: NegationPart = ({"negation": negate_stage(exp, units, vectors, pretrained)}
                              if negates(exp, units[0].seed) else {})
    result: SeedResult = {**evaluation, **negation, "training": {t: _training(tv) for t, tv in vectors.items()},
                          "vectors": {u.task: str(unit_vector_file(exp, u)) for u in units}}
    selection = next(iter(vectors.values())).meta["selection"]
    return SeedRun(result, selection, trained - started, time.perf_counter() - trained)


def _training(tv: TaskVector) -> Training:
    """The fine-tune's cost and step count; its keys are those the trainer wrote into the vector's metadata."""
    return cast(Training, {**tv.meta["training"], "steps": tv.meta["train_config"]["steps"]})


@dataclass(frozen=True)
class Entry:
    """A paradigm's (or preset's) results.json entry over seeds, with each seed's run."""

    record: ParadigmEntry
    runs: dict[int, SeedRun]


def run_entry(exp: Experiment, head: EntryHead, units_of_seed: Callable[[int], Sequence[Unit]],
              seeds: Sequence[int], pretrained: Splits, name: str) -> Entry:
    """Every seed of one paradigm or preset: `units_of_seed(seed)` lists its fine-tunes. `head` holds the
    entry's fixed fields; the seeds, selection and summary follow them."""
    runs = {seed: run_seed(exp, units_of_seed(seed), pretrained) for seed in seeds}
    results = {str(seed): run.result for seed, run in runs.items()}
    record: ParadigmEntry = {**head, "seeds": results, "selection": runs[seeds[-1]].selection,
                             "summary": summarize(results, exp.tasks)}
    summary = record["summary"]
    exp.log(f"{name}: absolute {summary['absolute']['mean']:.1%}, normalized {summary['normalized']['mean']:.1%}")
    return Entry(record, runs)
