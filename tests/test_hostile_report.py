"""`taskarith report` on a tampered results.json and in a tampered run folder: every value is escaped for where it
goes (Markdown, figures, terminal), every write is made under the folder's lock past no planted symlink, and a
value the report cannot use is one line naming the entry, exit code 2."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Callable

import filelock
import pytest
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.groundwork.errors import TaskarithError
from taskarith.groundwork.lock import run_lock
from taskarith.report import write_report
from taskarith.report.escape import figure_text, markdown_text

from cli_cases import Ctx
from hostile_cases import Case, check_hostile_input
from test_report import synthetic_results

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "results"
EVIL = "a\x1b[2J\r\nerror: fake <b>bold</b> | *x* _y_ [l](http://e) `c` $m$ &amp; \u202e"


# --- builders --------------------------------------------------------------------------------------------

def _run(c: Ctx, results: dict | None = None, text: str | None = None) -> Path:
    run = c.tmp / "run"
    run.mkdir(exist_ok=True)
    (run / "results.json").write_text(text if text is not None else json.dumps(results or synthetic_results()))
    return run


def _edited(edit: Callable[[dict], None]) -> Callable[[Ctx], list[str]]:
    """A setup whose run's results.json is the synthetic one after `edit(results)`."""
    def setup(c: Ctx) -> list[str]:
        results = synthetic_results()
        edit(results)
        return ["report", str(_run(c, results))]
    return setup


def _planted_figures(c: Ctx) -> list[str]:
    (c.tmp / "elsewhere").mkdir()
    run = _run(c)
    (run / "figures").symlink_to(c.tmp / "elsewhere")
    return ["report", str(run)]


def _planted_report(c: Ctx) -> list[str]:
    (c.tmp / "victim.md").write_text("keep me")
    run = _run(c)
    (run / "report.md").symlink_to(c.tmp / "victim.md")
    return ["report", str(run)]


def _nothing_elsewhere(c: Ctx) -> None:
    assert not list((c.tmp / "elsewhere").iterdir())


def _victim_kept(c: Ctx) -> None:
    assert (c.tmp / "victim.md").read_text() == "keep me" and (c.tmp / "run" / "report.md").is_symlink()


def _nested(depth: int) -> dict:
    results = synthetic_results()
    results["extra"] = json.loads("[" * depth + "]" * depth)
    return results


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(results: dict) -> None:
        node = results
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return edit


def _zero_parameters(results: dict) -> None:
    for entry in results["paradigms"].values():
        entry["selection"] = {"count": 0, "total": 0, "share": 0}


# --- the table -------------------------------------------------------------------------------------------

CASES = [
    # class 1: every write of the report is made under the run folder's lock, past no planted symlink
    Case("figures-folder-is-a-symlink", _planted_figures, "figures: is a symlink; refusing to write through it",
         _nothing_elsewhere),
    Case("report-md-is-a-symlink", _planted_report, "report.md: is a symlink; refusing to write through it",
         _victim_kept),
    # class 6: a tampered results.json is one line naming the entry
    Case("nan-accuracy", lambda c: ["report", str(_run(c, text=json.dumps(synthetic_results()).replace(
        '"absolute": 0.8', '"absolute": NaN', 1)))], "entry paradigms.nonlinear.seeds.0.addition.absolute: nan is "
                                                     "not a finite number"),
    Case("infinite-seconds", lambda c: ["report", str(_run(c, text=json.dumps(synthetic_results()).replace(
        '"total_seconds": 612.0', '"total_seconds": -Infinity')))], "entry timings.total_seconds: -inf is not a "
                                                                    "finite number"),
    Case("nested-deeply", lambda c: ["report", str(_run(c, _nested(200)))], "entry extra.0.0.0"),
    Case("config-is-a-list", _edited(_set("config", [1, 2])),
         "missing or malformed entry near config (AttributeError"),
    Case("seeds-is-a-number", _edited(_set("seeds", 7)), "missing or malformed entry near seeds (TypeError"),
    Case("accuracy-is-a-string", _edited(_set("pretrained", "test", "trec", "<b>0.4</b>")),
         "missing or malformed entry near pretrained.test"),
    Case("huge-integer-seconds", _edited(_set("analysis", "efficiency", "linear", "seconds_per_step", 10**400)),
         "near analysis.efficiency.linear.seconds_per_step (OverflowError"),
    Case("zero-parameters", _edited(_zero_parameters), "(ZeroDivisionError"),
    Case("huge-seed-list", _edited(_set("seeds", list(range(100_000)))), "near paradigms.nonlinear.seeds.2 "
                                                                         "(KeyError: '2')", seconds=20),
    Case("missing-key-with-controls", _edited(_set("tasks", {"trec\x1b[2J\n": {}, "sms": {}})),
         "(KeyError: 'trec\\x1b[2J\\n')"),
    Case("unknown-merge-method-shape", _edited(_set("paradigms", "linear", "summary", "merges", {"ties": 5})),
         "missing or malformed entry near paradigms.linear.seeds"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_report(case: Case, tmp_path, monkeypatch):
    check_hostile_input(case, Ctx(tmp_path, monkeypatch, model=None, tasks=[], tokenizer=None, finished_run=None))


# --- escaping: what the report prints from the file ----------------------------------------------------------

def _rename_task(results: dict, old: str, new: str) -> dict:
    return json.loads(json.dumps(results).replace(json.dumps(old), json.dumps(new)))


def test_hostile_names_are_shown_escaped(tmp_path):
    results = _rename_task(synthetic_results(), "trec", EVIL)
    results["config"]["name"] = EVIL
    results["model"].update(name=EVIL, family=EVIL)
    results["git_commit"] = EVIL
    (tmp_path / "results.json").write_text(json.dumps(results))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert all(line.isprintable() for line in result.output.splitlines()), result.output
    assert all(str(w.message).isprintable() and "<b>" not in str(w.message) for w in caught)  # no raw warning
    text = (tmp_path / "report.md").read_text()
    assert all(line.isprintable() for line in text.splitlines())
    shown = r"a\x1b\[2J\r\nerror: fake &lt;b&gt;bold&lt;/b&gt; \| \*x\* \_y\_ \[l\](http://e) \`c\` \$m\$ &amp;amp; \u202e"
    assert text.startswith(f"# Task arithmetic report: {shown}\n")
    assert f"**Model:** {shown} ({shown})" in text and f"**Git commit:** {shown}" in text
    assert "<b>" not in text and set(re.findall(r"(?<!\\)\]\(([^/]*)/", text)) == {"figures"}  # links: ours only
    per_task = next(line for line in text.splitlines() if line.startswith("| Model |"))
    in_cell = shown.replace("|", "\\|")  # the table escapes its pipes once more
    assert per_task == f"| Model | {in_cell} | sms |"  # a pipe in a name does not split its cell
    assert (tmp_path / "figures" / "similarity_linear.png").read_bytes().startswith(b"\x89PNG")


def test_a_pair_name_is_escaped_in_its_heading_and_alt_text(tmp_path):
    results = synthetic_results()
    pairs = results["analysis"]["disentangle"]
    pairs["<i>x</i>+](y)"] = pairs.pop("trec+sms")
    (tmp_path / "results.json").write_text(json.dumps(results))
    text = write_report(tmp_path).read_text()
    assert "### &lt;i&gt;x&lt;/i&gt;+\\](y)\n" in text
    assert "![Disentanglement error (prediction), &lt;i&gt;x&lt;/i&gt;+\\](y)](figures/" in text


def test_markdown_text_escapes_every_metacharacter_once():
    assert markdown_text("a<b>&c") == "a&lt;b&gt;&amp;c"
    assert markdown_text(r"|*`[]~#$\ ") == r"\|\*\`\[\]\~\#\$\\ "
    assert markdown_text("_x_ a_b") == r"\_x\_ a_b"  # `_` inside a word cannot emphasise
    assert markdown_text("\x1b\r\n\u202e") == r"\x1b\r\n\u202e"
    # a literal backslash is doubled, so a control character and its spelled-out escape stay apart
    assert markdown_text("\x1b") != markdown_text("\\x1b") and markdown_text("&lt;") != markdown_text("<")


def test_figure_text_draws_literally():
    assert figure_text("$x$\x1b\n") == r"\$x\$\x1b\n"


@pytest.mark.parametrize("name", sorted(p.name for p in PUBLISHED.glob("*") if (p / "results.json").is_file()))
def test_published_names_are_untouched_by_escaping(name):
    """Escaping keeps the schema's keys and the registry's names: the report still looks them up."""
    found: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            found.update(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            found.add(value)

    walk(json.loads((PUBLISHED / name / "results.json").read_text()))
    assert [s for s in found if markdown_text(s) != s] == []


# --- the lock: report, analyze and run write the report under it ---------------------------------------------

def test_report_waits_for_no_one_and_writes_nothing_while_another_holds_the_folder(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(synthetic_results()))
    other = filelock.FileLock(tmp_path / ".lock", blocking=False)  # another process's descriptor
    with other:
        with pytest.raises(TaskarithError, match="another taskarith process .* is using this run folder"):
            write_report(tmp_path)
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "figures").exists()


def test_report_under_its_folders_own_lock_reuses_it(tmp_path):
    """`taskarith results pool` writes the report while it holds the folder: no second flock, no deadlock."""
    (tmp_path / "results.json").write_text(json.dumps(synthetic_results()))
    with run_lock(tmp_path):
        report = write_report(tmp_path)
    assert re.search(r"^## Claims of the paper$", report.read_text(), flags=re.M)
