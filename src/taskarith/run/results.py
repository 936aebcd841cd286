"""results.json: everything a run measured, in one record that the report is drawn from alone
(docs/results-schema.md)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Sequence

from ..results_record import (Analysis, LrSearch, LrSearchPart, ParadigmEntry, ResultsRecord, Splits,
                              Timings)
from ..version import __version__
from .experiment import Experiment

RESULTS_SCHEMA = 1


def git_commit() -> str | None:
    """The commit of the code that ran, where it runs from a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def results_record(exp: Experiment, seeds: Sequence[int], pretrained: Splits, paradigms: dict[str, ParadigmEntry],
                   lr_search: dict[str, LrSearch] | None, analysis: Analysis, timings: Timings) -> ResultsRecord:
    cfg = exp.cfg
    searched: LrSearchPart = {"lr_search": lr_search} if lr_search else {}
    return {
        "schema": RESULTS_SCHEMA,
        "taskarith_version": __version__,
        "git_commit": git_commit(),
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": cfg.model_dump(mode="json"),
        "model": {"family": cfg.model.family, "name": cfg.model.name, "base_hash": exp.model.fingerprint(),
                  "parameters": sum(p.numel() for p in exp.model.net.parameters())},
        "seeds": list(seeds),
        "tasks": {t: {"classes": list(d.class_names), "templates": list(d.templates), "sizes": d.sizes()}
                  for t, d in exp.data(seeds[0]).items()},
        "pretrained": pretrained,
        "paradigms": paradigms,
        **searched,
        "analysis": analysis,
        "timings": timings,
    }
