"""Fuzzing `taskarith report` over a tampered results.json: a valid one with random entries replaced by hostile
values, deleted or renamed. Every outcome is a report that shows nothing from the file raw, or exit code 2 with
one printable line; never a traceback."""

from __future__ import annotations

import json
import re
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from taskarith.cli.app import app

from hostile_cases import _one_error
from test_report import synthetic_results

# a fixed seed (derandomize) and few cases: each one may draw every figure of the report
FUZZ = settings(max_examples=10, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

MARKUP = "\x1b[2J\r\nerror: fake<script>x</script>|*b*_c_[d](http://e)`f`$g$&amp;\u202e"
HOSTILE = [None, True, False, 0, -1, -10**30, 10**400, 1e308, -0.0, float("nan"), float("inf"), float("-inf"), "",
           "x", MARKUP, "0.5", [], [MARKUP], [1, "x", None], list(range(5000)), {}, {MARKUP: MARKUP}, {"mean": 1},
           json.loads("[" * 60 + "]" * 60)]


def _paths(value, path=()) -> list[tuple]:
    """The path of every entry below `value`: keys of objects, indices of lists."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = []
    for key, child in children:
        found += [(*path, key), *_paths(child, (*path, key))]
    return found


PATHS = _paths(synthetic_results())


def _mutate(results: dict, path: tuple, how: str, value) -> None:
    *parents, last = path
    node = results
    for key in parents:
        node = node[key]
    if how == "delete":
        del node[last]
    elif how == "rename" and isinstance(node, dict):
        node[MARKUP if value is None else str(value)] = node.pop(last)
    else:
        node[last] = value


MUTATIONS = st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(["replace", "delete", "rename"]),
                               st.sampled_from(HOSTILE)), min_size=1, max_size=3)


def _shows_nothing_raw(text: str) -> None:
    assert all(line.isprintable() for line in text.splitlines()), "a control character reached the output"
    assert "<script" not in text and "*b*" not in text and "`f`" not in text and "$g$" not in text
    assert set(re.findall(r"(?<!\\)\]\(([^/)]*)", text)) <= {"figures"}  # the only links are ours


@FUZZ
@given(mutations=MUTATIONS)
@example(mutations=[(("config", "name"), "replace", MARKUP), (("model", "family"), "replace", MARKUP)])
@example(mutations=[(("analysis", "similarity", "linear", "tasks", 0), "replace", MARKUP)])  # a figure's tick label
@example(mutations=[(("analysis", "similarity", "linear", "matrix"), "replace", [[float("nan")]])])
def test_tampered_results_give_a_safe_report_or_one_line(mutations, tmp_path):
    results = synthetic_results()
    for path, how, value in mutations:
        try:
            _mutate(results, path, how, value)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced this path
    run = Path(tempfile.mkdtemp(dir=tmp_path))
    (run / "results.json").write_text(json.dumps(results))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["report", str(run)])
    for w in caught:
        _shows_nothing_raw(str(w.message))
    if result.exit_code == 0:
        _shows_nothing_raw(result.output)
        _shows_nothing_raw((run / "report.md").read_text())
    else:
        assert result.exit_code == 2, (mutations, result.exception)
        _one_error(result.stderr)
        assert not (run / "report.md").exists()
