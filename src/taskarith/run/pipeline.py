"""`taskarith run`: config → data and model → fine-tune → task vectors → merge and evaluate → analyses →
results.json, as a sequence of stages over one shared Experiment. The report is drawn from results.json alone."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Iterable, Sequence

from ..groundwork.atomic import remove_temp_files, write_json
from ..config import EvalConfig, ExperimentConfig
from ..groundwork.errors import TaskarithError, quote
from ..training.selection import select
from ..groundwork.lock import acting_for, run_lock
from ..merging.methods import BASELINE, MERGE_METHODS, check_settings
from ..paradigms import PARADIGMS
from ..results_record import Analysis, EntryHead, SearchSecondsPart, SeedTimings, Timings
from .ablation import ablation
from .analyses import resolve_pair, run_analyses
from .experiment import Experiment, Log
from .lr_search import RunRates, run_rates
from .results import results_record
from .stages import Entry, run_entry
from .plan import finetune_units, first_seed, lr_candidates, paradigm_units
from .seeds import FIRST_SEED, seed_indices
from .finetunes import trained_vector
from ..training.distributed import Ranks, barrier, current_ranks, from_rank0, shutdown


def run_experiment(cfg: ExperimentConfig, run_dir: str | Path, *, seeds: int | Sequence[int] | None = None,
                   progress: bool = True, log: Log = print) -> Path | None:
    """Run everything the config asks for and write results.json; returns its path (None on a torchrun rank
    other than 0). `seeds` is a count (seeds 0 to count-1) or the seed indices to run; None means the config's
    count."""
    started = time.perf_counter()
    check_merges(cfg.eval)  # before the run folder or the model: a typo costs nothing
    indices = seed_indices(seeds, cfg.seeds)
    ranks = current_ranks()
    if ranks.world > 1:
        return run_on_ranks(cfg, Path(run_dir), indices, ranks, started, progress=progress, log=log)
    with run_lock(run_dir):
        remove_temp_files(run_dir)  # left by writes of a killed run; the lock says no writer is active
        exp = Experiment(cfg, Path(run_dir), progress=progress, log=log)
        return run_stages(exp, indices, started)


def run_on_ranks(cfg: ExperimentConfig, run_dir: Path, seeds: Sequence[int], ranks: Ranks, started: float, *,
                 progress: bool, log: Log) -> Path | None:
    """Under torchrun: every rank trains each fine-tune of the run together (DDP), one after another; then
    rank 0 alone evaluates and writes results.json as the sequential run does, and the others return None."""
    with run_lock(run_dir) if ranks.writes else acting_for(run_dir):
        if ranks.writes:
            remove_temp_files(run_dir)
        barrier(ranks)
        exp = Experiment(cfg, run_dir, progress=progress and ranks.writes, log=log if ranks.writes else _quiet)
        check_plan(exp)
        for unit in lr_candidates(exp):
            trained_vector(exp, unit)
        rates = from_rank0(run_rates(exp) if ranks.writes else None, ranks)
        for unit in finetune_units(exp, seeds, rates.by_paradigm):
            trained_vector(exp, unit)
        barrier(ranks)
        shutdown()  # rank 0 goes on alone: nothing after this waits on another rank
        return run_stages(exp, seeds, started, rates) if ranks.writes else None


def _quiet(_: str) -> None:
    pass


def check_merges(cfg: EvalConfig) -> None:
    """eval.merges names registered methods other than the plain sum, which every run scores anyway,
    eval.merge_alphas gives grids only to those, and eval.merge_settings holds each method's own settings."""
    others = [m for m in MERGE_METHODS if m != BASELINE]
    for name in cfg.merges:
        if name not in others:
            raise TaskarithError(f"eval.merges: {quote(name)} is not a method to compare with the plain sum; "
                                 f"expected one of {', '.join(others)}")
    for name in cfg.merge_alphas:
        if name not in cfg.merges:
            raise TaskarithError(f"eval.merge_alphas: {quote(name)} is not one of eval.merges "
                                 f"({', '.join(cfg.merges) or 'none'})")
    for name, given in cfg.merge_settings.items():  # any method's: an old merge_density sets three at once
        check_settings(name, given, f"eval.merge_settings.{name}")


def check_plan(exp: Experiment) -> None:
    """What the config names beyond its own types, checked before any fine-tuning: a typo fails at once."""
    cfg = exp.cfg
    for pair in cfg.analysis.disentangle_pairs:
        resolve_pair(exp, pair)
    for preset in cfg.analysis.ablation:
        select(exp.model.net, preset)
    control = cfg.eval.negation_control
    if control is not None and control not in exp.tasks:
        raise TaskarithError(f"eval.negation_control = {control!r}: not a task of this run; expected one of "
                             f"{', '.join(exp.tasks)}")


def run_stages(exp: Experiment, seeds: Sequence[int], started: float, found: RunRates | None = None) -> Path:
    """Every stage in order; `started` is when the run began (perf_counter), for its total time. `found` are
    the run's learning rates where an executor has already found them. The analyses read the first seed's
    vectors, so a run without that seed (a later piece of a seed study) has none."""
    cfg = exp.cfg
    check_plan(exp)
    exp.log(f"model {cfg.model.name}; tasks {', '.join(exp.tasks)}; paradigms {', '.join(cfg.paradigms)}; "
            f"seed(s) {_span(seeds)}")
    pretrained = exp.pretrained()
    rates = found or run_rates(exp)
    entries: dict[str, Entry] = {}
    for name in cfg.paradigms:
        paradigm = PARADIGMS[name]
        head: EntryHead = {"label": paradigm.label, "preset": paradigm.preset, "lr": rates.by_paradigm[name]}
        entries[name] = run_entry(exp, head, partial(paradigm_units, exp, name, rates=rates.by_paradigm), seeds,
                                  pretrained, paradigm.label)
    paradigms = {name: entry.record for name, entry in entries.items()}
    analysed = time.perf_counter()
    analysis: Analysis = {}
    if FIRST_SEED in seeds:
        analysis = run_analyses(exp, first_seed(exp, rates.by_paradigm), paradigms)
    if exp.cfg.analysis.ablation:
        exp.log(f"analysis: ablation of {', '.join(exp.cfg.analysis.ablation)}")
        analysis["ablation"] = ablation(exp, exp.cfg.analysis.ablation, pretrained, seeds)
    searched: SearchSecondsPart = {"lr_search_seconds": rates.seconds} if cfg.lr_search else {}
    timings = _timings(entries.values(), seeds, searched, analysed, started)
    path = exp.run_dir / "results.json"
    write_json(path, results_record(exp, seeds, pretrained, paradigms, rates.record, analysis, timings))
    return path


def _timings(entries: Iterable[Entry], seeds: Sequence[int], searched: SearchSecondsPart, analysed: float,
             started: float) -> Timings:
    """Fine-tuning and evaluation seconds over the run and per seed, then the analyses' (from `analysed`)
    and the whole run's (from `started`)."""
    runs = [(seed, run) for entry in entries for seed, run in entry.runs.items()]
    per_seed: dict[str, SeedTimings] = {
        str(s): {"finetune_seconds": sum(r.finetune_seconds for seed, r in runs if seed == s),
                 "evaluate_seconds": sum(r.evaluate_seconds for seed, r in runs if seed == s)} for s in seeds}
    return {"finetune_seconds": sum(r.finetune_seconds for _, r in runs),
            "evaluate_seconds": sum(r.evaluate_seconds for _, r in runs), "per_seed": per_seed, **searched,
            "analysis_seconds": time.perf_counter() - analysed, "total_seconds": time.perf_counter() - started}


def _span(seeds: Sequence[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)) \
        else ", ".join(map(str, seeds))
