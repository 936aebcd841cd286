"""`taskarith results pool`: join the results of several runs of one config (disjoint seed ranges) into one
results.json and report, so that a seed study spread over sessions or machines is reported as one."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import List

import typer

from .terminal import echo, warn
from ..groundwork.errors import TaskarithError
from ..groundwork.input_files import note_input

results_app = typer.Typer(no_args_is_help=True, help="Join the results of runs.")


@results_app.command("pool")
def pool(
    runs: List[Path] = typer.Argument(..., help="Run folders of one config, each holding results.json of its seeds."),
    out: Path = typer.Option(..., help="Folder for the pooled results.json, report.md and figures."),
) -> None:
    """Pool the seeds of several runs of one config into one results.json and report."""
    from ..groundwork.atomic import write_json
    from ..groundwork.lock import run_lock
    from ..report import load_results, write_report
    from ..run.pool import differing_commits, pool_results
    from ..run.results import git_commit

    target = os.path.realpath(out)
    for run in runs:
        if os.path.realpath(run) == target:
            raise TaskarithError(f"--out {out}: is one of the runs being pooled; pool into a new folder")
        note_input(run / "results.json")  # and no hard link to one is written over
    records = [load_results(run / "results.json") for run in runs]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        pooled = pool_results(records, [str(r) for r in runs], commit=git_commit(), created=now)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        # a hand-edited or truncated results.json: name what is wrong rather than show a traceback
        raise TaskarithError(f"results.json of {', '.join(map(str, runs))}: missing or malformed entry "
                             f"({type(e).__name__}: {e})") from None
    commits = differing_commits(pooled)
    if commits:
        warn(f"warning: the seeds were run at {len(commits)} commits ({', '.join(c[:7] for c in commits)}); "
             "results.json records each seed's")
    with run_lock(out):
        write_json(out / "results.json", pooled)
        report = write_report(out)
    echo(f"pooled seeds {', '.join(map(str, pooled['seeds']))} from {len(runs)} runs")
    echo(f"report: {report}")
