"""The analysis stages: each computes one analysis of the config over the run's first-seed vectors and leaves
its artifact under stages/analysis/ (the non-linear advantage, a subtraction of two summaries, needs none).
`analysis_stages` is the one place that decides what runs; the stage functions also serve `taskarith analyze`."""

from __future__ import annotations

from functools import partial
from typing import Callable, Mapping, NamedTuple, Sequence

from ..analysis.advantage import nonlinear_advantage
from ..analysis.disentangle import disentangle, pair_key, sample_evalset
from ..analysis.efficiency import efficiency
from ..analysis.kernel import kernel_test
from ..analysis.similarity import similarity
from ..groundwork.errors import TaskarithError
from ..paradigms import PARADIGMS
from ..results_record import Analysis, ParadigmEntry
from ..vectors import TaskVector
from .artifacts import DISENTANGLE, EFFICIENCY, KERNEL, SIMILARITY, run_stage, stage_inputs
from .experiment import Experiment
from .seeds import FIRST_SEED

Vectors = Mapping[str, Mapping[str, TaskVector]]  # paradigm -> task -> τ
VectorFiles = Mapping[str, Mapping[str, str]]  # paradigm -> task -> vector file, relative to the run folder


class FirstSeed(NamedTuple):
    """What the analyses read, in a run, under Ray and in `taskarith analyze` alike: the first seed's vectors
    of every paradigm and their files (`plan.first_seed` finds both)."""

    vectors: dict[str, dict[str, TaskVector]]
    files: dict[str, dict[str, str]]


def resolve_pair(exp: Experiment, pair: Sequence[str]) -> tuple[str, str]:
    """A pair of the run's tasks, each given by its name or by its entry in data.tasks."""
    by_entry = {entry: name for name, entry in exp.sources.items()}
    names = []
    for task in pair:
        name = task if task in exp.tasks else by_entry.get(task)
        if name is None:
            raise TaskarithError(f"disentanglement pair {'+'.join(pair)}: task {task!r} is not a task of this run "
                                 f"({', '.join(exp.tasks)})")
        names.append(name)
    if len(names) != 2 or names[0] == names[1]:
        raise TaskarithError(f"disentanglement pair {'+'.join(pair)}: expected two different tasks")
    return names[0], names[1]


def _inputs(exp: Experiment, files: VectorFiles, **extra) -> dict:
    return stage_inputs(exp, {f"{p}/{t}": path for p, tasks in files.items() for t, path in tasks.items()},
                        **extra)


def similarity_stage(exp: Experiment, first: Vectors, files: VectorFiles) -> dict:
    return run_stage(exp, "analysis/similarity", _inputs(exp, files, reads=SIMILARITY),
                     lambda: {p: similarity(dict(v)) for p, v in first.items()})


def efficiency_stage(exp: Experiment, first: Vectors, files: VectorFiles) -> dict:
    return run_stage(exp, "analysis/efficiency", _inputs(exp, files, reads=EFFICIENCY),
                     lambda: {p: efficiency(dict(v), {t: exp.run_dir / files[p][t] for t in v})
                              for p, v in first.items()})


def kernel_stage(exp: Experiment, first: Vectors, files: VectorFiles,
                 individual: Mapping[str, Mapping[str, float]] | None = None) -> dict:
    """The kernel test for every paradigm trained in place; `individual` maps a paradigm to its first seed's
    individual test accuracies, reused when given."""
    def compute() -> dict:
        out = {}
        for paradigm in (p for p in PARADIGMS if p in first and not PARADIGMS[p].linear):
            exp.log(f"kernel test: {paradigm}")
            tests = {t: exp.evalsets[t]["test"] for t in first[paradigm]}
            out[paradigm] = kernel_test(exp.model, first[paradigm], tests, exp.heads,
                                        (individual or {}).get(paradigm))
        return out

    return run_stage(exp, "analysis/kernel", _inputs(exp, files, reads=KERNEL), compute)


def disentangle_stage(exp: Experiment, first: Vectors, files: VectorFiles, pairs: Sequence[tuple[str, str]], *,
                      grid_points: int, span: float, points: int) -> dict:
    """ξ of each pair on a seeded sample of `points` test examples per task."""
    out = {}
    for pair in pairs:
        def compute(pair: tuple[str, str] = pair) -> dict:
            data = exp.data(0)
            evalsets = [sample_evalset(exp.model, data[t].test, points, exp.cfg.eval.batch_size) for t in pair]
            vectors = {p: [v[t] for t in pair] for p, v in first.items()}
            return disentangle(exp.model, vectors, pair, evalsets, [exp.heads[t] for t in pair],
                               grid_points=grid_points, span=span, log=exp.log)

        inputs = _inputs(exp, files, reads=DISENTANGLE, grid=grid_points, span=span, points=points)
        out[pair_key(pair)] = run_stage(exp, f"analysis/disentangle/{pair_key(pair)}", inputs, compute)
    return out


def analysis_stages(exp: Experiment, first: Vectors, files: VectorFiles,
                    individual: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Callable[[], dict]]:
    """The analyses over vectors that the config switches on, by name, each leaving its own artifact: the one
    list both the sequential run and the Ray executor work through."""
    cfg = exp.cfg.analysis
    stages: dict[str, Callable[[], dict]] = {}
    if cfg.similarity and len(exp.tasks) > 1:
        stages["similarity"] = lambda: similarity_stage(exp, first, files)
    if cfg.efficiency:
        stages["efficiency"] = lambda: efficiency_stage(exp, first, files)
    if cfg.kernel:
        stages["kernel"] = lambda: kernel_stage(exp, first, files, individual)
    for pair in (resolve_pair(exp, pair) for pair in cfg.disentangle_pairs):
        stages[f"disentangle/{pair_key(pair)}"] = partial(_configured_pair, exp, first, files, pair)
    return stages


def _configured_pair(exp: Experiment, first: Vectors, files: VectorFiles, pair: tuple[str, str]) -> dict:
    cfg = exp.cfg.analysis
    return disentangle_stage(exp, first, files, [pair], grid_points=cfg.disentangle_grid, span=cfg.disentangle_range,
                             points=cfg.disentangle_points)[pair_key(pair)]


def run_analyses(exp: Experiment, first: FirstSeed, paradigms: Mapping[str, ParadigmEntry]) -> Analysis:
    """Every analysis the config switches on, over the first seed's vectors of each paradigm; the kernel test
    reuses the individual accuracies the paradigms' entries hold for that seed."""
    individual = {p: paradigms[p]["seeds"][str(FIRST_SEED)]["individual"]["test"] for p in first.vectors}
    done: dict[str, dict] = {}
    for name, compute in analysis_stages(exp, first.vectors, first.files, individual).items():
        exp.log(f"analysis: {name}")
        done[name] = compute()
    out: Analysis = {}
    if "similarity" in done:
        out["similarity"] = done["similarity"]
    if "efficiency" in done:
        out["efficiency"] = done["efficiency"]
    if "nonlinear" in paradigms:
        exp.log("analysis: non-linear advantage")
        out["advantage"] = nonlinear_advantage(paradigms)
    if "kernel" in done:
        out["kernel"] = done["kernel"]
    pairs = {name.split("/", 1)[1]: result for name, result in done.items() if name.startswith("disentangle/")}
    if pairs:
        out["disentangle"] = pairs
    return out
