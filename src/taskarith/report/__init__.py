"""`taskarith report`: results.json → report.md and figures/*.png. Reads, never recomputes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..atomic import write_text
from ..errors import TaskarithError
from ..safety import parse_json, read_text

SUPPORTED_SCHEMA = 1  # the "schema" of docs/results-schema.md this report understands

__all__ = ["load_results", "write_report"]


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
    return results


def _drawer(run_dir: Path) -> Callable[..., str]:
    def draw(name: str, figure: Callable, *args) -> str:
        figure(*args, run_dir / "figures" / f"{name}.png")
        return f"figures/{name}.png"

    return draw


def write_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.md and run_dir/figures/*.png from run_dir/results.json; returns the report path."""
    from .markdown import render  # matplotlib loads only when a report is written

    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    results = load_results(path)
    try:
        text = render(results, _drawer(run_dir))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        # A hand-edited or truncated results.json: name the entry rather than show a traceback.
        raise TaskarithError(f"{path}: missing or malformed entry ({type(e).__name__}: {e})") from e
    report = run_dir / "report.md"
    write_text(report, text)
    return report
