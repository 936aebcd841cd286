"""The stages of one paradigm (or ablation preset) for one seed: fine-tune every task, evaluate the vectors,
negate them. Each stage is a function of explicit inputs that leaves its artifact in the run folder: the
vector files, then stages/seedS/LABEL/{evaluate,negate}.json."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..vectors import TaskVector
from .artifacts import run_stage, stage_inputs
from .experiment import Experiment
from .protocol import evaluate_vectors, negate_each
from .seeds import FIRST_SEED
from .summary import summarize
from .training import Unit, trained_vector, unit_vector_file


@dataclass
class SeedRun:
    """What one seed of a paradigm produced: its results.json record, its vectors and its cost."""

    result: dict
    vectors: dict[str, TaskVector]
    finetune_seconds: float
    evaluate_seconds: float


def _stage(exp: Experiment, units: Sequence[Unit], name: str, **extra) -> tuple[str, dict]:
    """The artifact's name, stages/seedS/LABEL/NAME, and its inputs: the units' vector files name both."""
    files = {u.task: unit_vector_file(exp, u) for u in units}
    folder = f"seed{units[0].seed}/{files[units[0].task].parent.parent.name}"
    return f"{folder}/{name}", stage_inputs(exp, files, **extra)


def evaluate_stage(exp: Experiment, units: Sequence[Unit], vectors: Mapping[str, TaskVector]) -> dict:
    """Individual, addition and merges (stage `evaluate`)."""
    name, inputs = _stage(exp, units, "evaluate")
    return run_stage(exp, name, inputs, lambda: evaluate_vectors(exp, vectors, units[0].seed))


def negates(exp: Experiment, seed: int) -> bool:
    """Negation is a protocol check, not a claim compared over seeds: the first seed only."""
    return exp.cfg.eval.negation and len(exp.tasks) > 1 and seed == FIRST_SEED


def negate_stage(exp: Experiment, units: Sequence[Unit], vectors: Mapping[str, TaskVector],
                 pretrained: Mapping) -> dict:
    """Negation of each vector (stage `negate`), where `negates(exp, seed)`."""
    name, inputs = _stage(exp, units, "negate", pretrained=pretrained)
    return run_stage(exp, name, inputs, lambda: negate_each(exp, vectors, pretrained))


def run_seed(exp: Experiment, units: Sequence[Unit], pretrained: Mapping) -> SeedRun:
    """Fine-tune (or reuse) every unit of one seed, then evaluate the vectors."""
    started = time.perf_counter()
    vectors = {u.task: trained_vector(exp, u) for u in units}
    trained = time.perf_counter()
    exp.log(f"evaluating {units[0].paradigm if units[0].preset is None else units[0].preset} (seed {units[0].seed})")
    result = evaluate_stage(exp, units, vectors)
    if negates(exp, units[0].seed):
        result["negation"] = negate_stage(exp, units, vectors, pretrained)
    result["training"] = {t: {**tv.meta["training"], "steps": tv.meta["train_config"]["steps"]}
                          for t, tv in vectors.items()}
    result["vectors"] = {u.task: str(unit_vector_file(exp, u)) for u in units}
    return SeedRun(result, vectors, trained - started, time.perf_counter() - trained)


@dataclass
class Entry:
    """A paradigm's (or preset's) results.json entry over seeds, with each seed's vectors and cost."""

    record: dict
    runs: dict[int, SeedRun] = field(default_factory=dict)


def run_entry(exp: Experiment, record: dict, units_of_seed, seeds: Sequence[int], pretrained: Mapping,
              name: str) -> Entry:
    """Every seed of one paradigm or preset: `units_of_seed(seed)` lists its fine-tunes. `record` holds the
    entry's fixed fields (label, preset, ...); the seeds, selection and summary are added here."""
    entry = Entry({**record, "seeds": {}})
    for seed in seeds:
        run = run_seed(exp, units_of_seed(seed), pretrained)
        entry.runs[seed] = run
        entry.record["seeds"][str(seed)] = run.result
        entry.record["selection"] = next(iter(run.vectors.values())).meta["selection"]
    entry.record["summary"] = summarize(entry.record["seeds"], exp.tasks)
    summary = entry.record["summary"]
    exp.log(f"{name}: absolute {summary['absolute']['mean']:.1%}, normalized {summary['normalized']['mean']:.1%}")
    return entry
