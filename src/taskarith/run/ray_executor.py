"""`taskarith run CONFIG --executor ray`: the run's units as Ray tasks over a cluster.

One task per fine-tune, then one per evaluation unit (each paradigm's α sweep and merges, each negation, each
analysis), each started as soon as the vectors it reads exist, with the resources the config's `resources`
section names. Every unit writes its artifact into the run folder exactly as the sequential run does, so the
folder must be on storage every node sees. When all are done the driver runs the sequential path, which
finds every vector and stage artifact in place and assembles results.json; a run started under Ray can be
finished without it, and the reverse. A worker that dies is replaced by Ray and its unit runs again,
resuming from its checkpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..groundwork.atomic import remove_temp_files
from ..config import ExperimentConfig, TaskRequest
from ..groundwork.errors import TaskarithError, printable
from ..groundwork.lock import acting_for, run_lock
from ..groundwork.resources import apply_process_settings, check_grantable, process_settings_applied
from ..results_record import Evaluation, Negation
from .ablation import ablation_units
from .analyses import analysis_stages
from .experiment import Experiment, Log
from .lr_search import RunRates, run_rates
from .pipeline import check_merges, check_plan, run_stages
from .plan import finetune_units, first_seed, lr_candidates, paradigm_units
from .ray_cluster import check_address, connect, show_ray_output, target_of
from .seeds import FIRST_SEED, seed_indices
from .stages import evaluate_stage, negate_stage, negates
from .finetunes import Unit, trained_vector, unit_vector_file


def import_ray():
    try:
        import ray
    except ImportError:
        raise TaskarithError("--executor ray needs Ray: pip install 'taskarith[ray]'") from None
    return ray


@dataclass(frozen=True)
class Context:
    """What a worker needs to rebuild the run: paths are absolute, and relative ones in the config resolve
    against the driver's folder, which every node must see at the same path."""

    cfg: ExperimentConfig
    run_dir: str
    cwd: str
    process_settings: bool  # the driver's (the CLI's), repeated in each worker


_experiments: dict[tuple[str, str], Experiment] = {}  # one per worker process, kept across its units


def _experiment(ctx: Context, threads: float) -> Experiment:
    import torch

    torch.set_num_threads(max(1, int(threads)))
    if ctx.process_settings:
        apply_process_settings()
    key = (ctx.cfg.model_dump_json(), ctx.run_dir)
    if key not in _experiments:
        _experiments.clear()
        os.chdir(ctx.cwd)
        _experiments[key] = Experiment(ctx.cfg, Path(ctx.run_dir), progress=False, log=_worker_log)
    return _experiments[key]


def _worker_log(line: str) -> None:
    print(printable(line), flush=True)


def finetune_unit(ctx: Context, unit: Unit) -> str:
    """Train (or reuse, or resume) one unit's vector; its file, relative to the run folder."""
    exp = _experiment(ctx, ctx.cfg.resources.finetune.num_cpus)
    with acting_for(exp.run_dir):
        trained_vector(exp, unit)
    return str(unit_vector_file(exp, unit))


def evaluate_unit(ctx: Context, kind: str, units: Sequence[Unit],
                  *_trained: str) -> Evaluation | dict[str, Negation]:
    """The `evaluate` or `negate` stage of one seed of a paradigm or ablation preset."""
    exp = _experiment(ctx, ctx.cfg.resources.evaluate.num_cpus)
    with acting_for(exp.run_dir):
        vectors = {u.task: trained_vector(exp, u) for u in units}
        if kind == "negate":
            return negate_stage(exp, units, vectors, exp.pretrained())
        return evaluate_stage(exp, units, vectors)


def analysis_unit(ctx: Context, name: str, rates: dict[str, float], *after: Any) -> dict:
    """One analysis stage over seed 0's vectors. The kernel test runs after seed 0's evaluations, given in
    paradigm order, and reuses their individual accuracies as the sequential run does; the others run after
    seed 0's fine-tunes."""
    exp = _experiment(ctx, ctx.cfg.resources.evaluate.num_cpus)
    with acting_for(exp.run_dir):
        first, files = first_seed(exp, rates)
        individual = {p: r["individual"]["test"] for p, r in zip(exp.cfg.paradigms, after)} if name == "kernel" \
            else None
        return analysis_stages(exp, first, files, individual)[name]()


def _options(request: TaskRequest, retries: int, name: str) -> dict:
    options: dict[str, Any] = {"num_cpus": request.num_cpus, "num_gpus": request.num_gpus, "max_retries": retries,
                               "name": name}
    if request.memory is not None:
        options["memory"] = request.memory
    return options


def _gather(ray, refs: list) -> list:
    """Every result; the first failure cancels the rest and surfaces as the one-line error it was raised as."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        for ref in refs:
            ray.cancel(ref, force=True)
        if isinstance(e.cause, TaskarithError):
            raise TaskarithError(str(e.cause)) from None
        raise
    except ray.exceptions.WorkerCrashedError:
        raise TaskarithError("a unit's worker died more often than resources.retries allows; "
                             "run again to resume from its checkpoint") from None


def _submit(ray, exp: Experiment, ctx: Context, seeds: Sequence[int]) -> tuple[RunRates, list]:
    """The run's rates, and every other unit of the run as a Ray task, each given the results of the tasks it
    reads (the rate search's fine-tunes are awaited first: the rates they choose name the run's other vectors)."""
    cfg, res, log = exp.cfg, exp.cfg.resources, exp.log
    finetune = ray.remote(finetune_unit).options(**_options(res.finetune, res.retries, "finetune"))
    evaluate = ray.remote(evaluate_unit).options(**_options(res.evaluate, res.retries, "evaluate"))
    analyse = ray.remote(analysis_unit).options(**_options(res.evaluate, res.retries, "analysis"))
    if cfg.lr_search:
        log(f"ray: {len(lr_candidates(exp))} fine-tune(s) of the learning-rate search")
        _gather(ray, [finetune.remote(ctx, u) for u in lr_candidates(exp)])
    found = run_rates(exp)
    rates = found.by_paradigm
    units = finetune_units(exp, seeds, rates)
    trained = {unit_vector_file(exp, u): finetune.remote(ctx, u) for u in units}
    groups = [paradigm_units(exp, p, s, rates) for s in seeds for p in cfg.paradigms]
    groups += [ablation_units(exp, preset, s) for s in seeds for preset in cfg.analysis.ablation]
    evaluations: dict[tuple, Any] = {}
    for group in groups:
        files = tuple(unit_vector_file(exp, u) for u in group)
        for kind in ("evaluate", "negate") if negates(exp, group[0].seed) else ("evaluate",):
            evaluations.setdefault((kind, files), evaluate.remote(ctx, kind, group, *[trained[f] for f in files]))
    analysed = FIRST_SEED in seeds  # the analyses read the first seed's vectors, in the run that holds it
    seed0 = [tuple(unit_vector_file(exp, u) for u in paradigm_units(exp, p, FIRST_SEED, rates))
             for p in cfg.paradigms] if analysed else []
    after = {"kernel": [evaluations[("evaluate", files)] for files in seed0]}
    names = list(analysis_stages(exp, {}, {})) if analysed else []
    log(f"ray: {len(units)} fine-tune(s), {len(evaluations)} evaluation(s), {len(names)} analysis unit(s)")
    analyses = [analyse.remote(ctx, name, rates, *after.get(name, [trained[f] for fs in seed0 for f in fs]))
                for name in names]
    return found, [*trained.values(), *evaluations.values(), *analyses]


def run_on_ray(cfg: ExperimentConfig, run_dir: str | Path, *, seeds: int | Sequence[int] | None = None,
               address: str | None = None, progress: bool = True, log: Log = print, ray_output: bool = False,
               join_seconds: float | None = None) -> Path:
    """Run everything the config asks for on a Ray cluster and write results.json; returns its path.
    `ray_output`: Ray's own messages on the terminal, escaped; `join_seconds`: the deadline to join a cluster.
    The cluster is joined and checked before the run folder is touched, so a failure there leaves nothing."""
    ray = import_ray()
    started = time.perf_counter()
    check_merges(cfg.eval)
    seeds = seed_indices(seeds, cfg.seeds)
    run_dir = Path(os.path.abspath(run_dir))
    target, named = target_of(address)
    if target is not None:
        check_address(target, named)
    show_ray_output(ray, ray_output)
    if not ray.is_initialized():
        connect(ray, address, ray_output, join_seconds)
    res = cfg.resources
    check_grantable({"finetune": res.finetune.model_dump(), "evaluate": res.evaluate.model_dump()},
                    [node["Resources"] for node in ray.nodes() if node.get("Alive")])
    with run_lock(run_dir):
        remove_temp_files(run_dir)
        exp = Experiment(cfg, run_dir, progress=progress, log=log)
        check_plan(exp)
        ctx = Context(cfg, str(run_dir), os.getcwd(), process_settings_applied())
        rates, refs = _submit(ray, exp, ctx, seeds)
        _gather(ray, refs)
        log(f"ray: every unit done in {time.perf_counter() - started:.0f} s; assembling results.json")
        return run_stages(exp, seeds, started, rates)
