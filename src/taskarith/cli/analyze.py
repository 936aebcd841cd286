"""`taskarith analyze ANALYSIS RUN_DIR`: compute one analysis on a finished run, with the run's own config and
task vectors (first seed), merge it into results.json and regenerate the report."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from .terminal import echo, start_computing
from ..groundwork.atomic import write_json
from ..config import validate
from ..groundwork.errors import TaskarithError
from ..groundwork.lock import run_lock

if TYPE_CHECKING:
    from ..run.analyses import FirstSeed

analyze_app = typer.Typer(no_args_is_help=True,
                          help="Compute one analysis on a finished run and merge it into its results.json.")

RUN_DIR = typer.Argument(..., help="A run folder holding results.json.")


class _Run:
    """A finished run: its results.json and the Experiment rebuilt from the config recorded there."""

    def __init__(self, run_dir: Path):
        from ..report import load_results

        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "results.json"
        if not self.path.is_file():
            raise TaskarithError(f"{self.path}: no such file; run `taskarith run` first")
        # held until save(): no `taskarith run` may rewrite results.json meanwhile (process exit frees it too)
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(run_lock(self.run_dir))
        self.results = load_results(self.path)
        if "config" not in self.results:
            raise TaskarithError(f"{self.path}: no recorded config")
        cfg = validate(self.results["config"], f"{self.path}: config")
        start_computing()  # a missing or broken results.json fails before torch is imported
        from ..run import Experiment

        self.exp = Experiment(cfg, self.run_dir, log=echo)

    def first_seed(self) -> FirstSeed:
        """The first seed's vectors of every paradigm of the run's config (each trained only if missing) and their
        files, found as the run's own analyses find them: at the rate each paradigm's entry records (lr_search's
        choice), or train.lr in a run from before lr_search."""
        from ..run.plan import first_seed

        recorded = self.results.get("paradigms", {})
        cfg = self.exp.cfg
        return first_seed(self.exp, {p: recorded.get(p, {}).get("lr", cfg.train.lr) for p in cfg.paradigms})

    def save(self, key: str, value: dict, merge: bool = False) -> None:
        """Store results["analysis"][key] (merged entry by entry with `merge`), then redraw the report."""
        from ..report import write_report

        analysis = self.results.setdefault("analysis", {})
        if merge:
            analysis.setdefault(key, {}).update(value)
        else:
            analysis[key] = value
        write_json(self.path, self.results)
        self._lock.close()
        echo(f"results: {self.path}")
        echo(f"report:  {write_report(self.run_dir)}")


@analyze_app.command()
def kernel(run_dir: Path = RUN_DIR) -> None:
    """Kernel behaviour: accuracy of the post-hoc linearized model vs the fine-tuned one."""
    run = _Run(run_dir)  # a missing or broken results.json fails before the stages import torch
    from ..run.analyses import kernel_stage

    run.save("kernel", kernel_stage(run.exp, *run.first_seed()))


def _parse_pair(text: str) -> tuple[str, str]:
    parts = text.split("+")
    if len(parts) != 2 or not all(parts):
        raise TaskarithError(f"--pair {text!r}: expected TASK+TASK")
    return parts[0], parts[1]


@analyze_app.command()
def disentangle(
    run_dir: Path = RUN_DIR,
    pair: List[str] = typer.Option([], "--pair", help="Tasks as A+B (repeatable); default: the config's pairs."),
    grid: Optional[int] = typer.Option(None, min=2, help="Grid points per axis (default: the config's)."),
    points: Optional[int] = typer.Option(None, min=1, help="Test examples sampled per task (default: the config's)."),
    span: Optional[float] = typer.Option(None, "--range", help="α runs over [-RANGE, RANGE] (default: the config's)."),
) -> None:
    """Weight disentanglement error ξ(α1, α2) of task pairs."""
    if span is not None and span <= 0:
        raise TaskarithError(f"--range must be positive, got {span:g}")
    run = _Run(run_dir)
    from ..run.analyses import disentangle_stage, resolve_pair

    cfg = run.exp.cfg.analysis
    pairs = [resolve_pair(run.exp, _parse_pair(p)) for p in pair] or [resolve_pair(run.exp, p)
                                                                      for p in cfg.disentangle_pairs]
    if not pairs:
        raise TaskarithError("no task pair: pass --pair A+B or set analysis.disentangle_pairs")
    result = disentangle_stage(run.exp, *run.first_seed(), pairs, grid_points=grid or cfg.disentangle_grid,
                               span=span or cfg.disentangle_range, points=points or cfg.disentangle_points)
    run.save("disentangle", result, merge=True)


@analyze_app.command()
def similarity(run_dir: Path = RUN_DIR) -> None:
    """Cosine similarity between the task vectors of each paradigm."""
    run = _Run(run_dir)
    from ..run.analyses import similarity_stage

    if len(run.exp.tasks) < 2:
        raise TaskarithError("similarity needs at least two tasks")
    run.save("similarity", similarity_stage(run.exp, *run.first_seed()))


@analyze_app.command()
def efficiency(run_dir: Path = RUN_DIR) -> None:
    """Trainable parameters, time and memory of each paradigm's fine-tuning."""
    run = _Run(run_dir)
    from ..run.analyses import efficiency_stage

    paradigms = run.results.get("paradigms", {})
    missing = [p for p in run.exp.cfg.paradigms if p not in paradigms]
    if missing:
        raise TaskarithError(f"{run.path}: no results for paradigm {missing[0]!r}")
    run.save("efficiency", efficiency_stage(run.exp, *run.first_seed()))


@analyze_app.command()
def ablation(
    run_dir: Path = RUN_DIR,
    preset: List[str] = typer.Option([], "--preset", help="A preset to fine-tune with (repeatable); "
                                                          "default: the config's analysis.ablation."),
) -> None:
    """Fine-tune every task with each preset and evaluate the merged model (Table 5)."""
    run = _Run(run_dir)
    from ..run.ablation import ablation as ablation_stage

    presets = list(preset) or list(run.exp.cfg.analysis.ablation)
    if not presets:
        raise TaskarithError("no preset: pass --preset or set analysis.ablation")
    run.save("ablation", ablation_stage(run.exp, presets, run.exp.pretrained()), merge=True)
