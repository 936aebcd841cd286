"""`taskarith report`: results.json → report.md and figures/*.png. Reads, never recomputes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

from ..groundwork.atomic import write_text
from ..groundwork.errors import TaskarithError, clip
from ..groundwork.lock import held_run_folder, run_lock
from ..groundwork.safety import parse_json, read_text
from .entries import Reading, check_values

SUPPORTED_SCHEMA = 1  # the "schema" of docs/results-schema.md this report understands

__all__ = ["load_results", "write_report"]

# what rendering a results.json of the right schema but with a wrong value somewhere can raise
MALFORMED = (LookupError, TypeError, ValueError, AttributeError, ArithmeticError)


def load_results(path: str | Path) -> dict:
    """The results dict of a run, or a TaskarithError naming the file and what is wrong with it."""
    path = Path(path)
    text = read_text(path, missing="not found; run `taskarith run` first")
    results = parse_json(text, str(path), problem="invalid JSON")
    if not isinstance(results, dict):
        raise TaskarithError(f"{path}: expected a JSON object at the top level")
    schema = results.get("schema")
    if schema != SUPPORTED_SCHEMA:
        raise TaskarithError(f"{path}: unsupported \"schema\" {schema!r}; this taskarith reads schema "
                             f"{SUPPORTED_SCHEMA}")
    check_values(results, path)
    return results


def _drawer(run_dir: Path, reading: Reading) -> Callable[..., str]:
    def draw(name: str, figure: Callable, *args) -> str:
        figure(*(reading.for_figures(a) for a in args), run_dir / "figures" / f"{name}.png")
        return f"figures/{name}.png"

    return draw


def write_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.md and run_dir/figures/*.png from run_dir/results.json; returns the report path.

    Under the run folder's lock, taken here unless this context holds it already: so no write goes through a
    symlink planted anywhere below the folder, and no run rewrites results.json meanwhile."""
    run_dir = Path(run_dir)
    held = held_run_folder() == Path(os.path.abspath(run_dir))
    with contextlib.nullcontext() if held else run_lock(run_dir):
        return _write(run_dir)


def _write(run_dir: Path) -> Path:
    from .markdown import render  # matplotlib loads only when a report is written

    path = run_dir / "results.json"
    results = load_results(path)
    reading = Reading()
    try:
        text = render(reading.for_markdown(results), _drawer(run_dir, reading))
    except MALFORMED as e:
        # A hand-edited or truncated results.json: name the entry rather than show a traceback.
        # a KeyError quotes the key as escaped for Markdown: quote the file's own
        detail = repr(reading.original(e.args[0])) if isinstance(e, KeyError) and e.args else str(e)
        raise TaskarithError(f"{path}: missing or malformed entry near {reading.where()} "
                             f"({type(e).__name__}: {clip(detail)})") from e
    report = run_dir / "report.md"
    write_text(report, text)
    return report
