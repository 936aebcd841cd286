"""A name not in a registry is one line of one form everywhere: "unknown KIND 'NAME' (did you mean 'X'?);
known: ...", the hint only where a known name is close."""

from __future__ import annotations

import re

import pytest

from taskarith.data import corpora, resolve_task
from taskarith.data.glue import load_glue_task
from taskarith.data.images import load_image_task
from taskarith.data.registry import load_task
from taskarith.groundwork import fetch
from taskarith.groundwork.errors import TaskarithError
from taskarith.models import load_family
from taskarith.paradigms import resolve_paradigm
from taskarith.training.selection import patterns_for

CASES = [
    ("paradigm", lambda: resolve_paradigm("atention"), "attention", "nonlinear, linear, attention"),
    ("preset", lambda: patterns_for("attenton"), "attention", " or regex:PATTERN"),
    ("model family", lambda: load_family("text-encodr", "x"), "text-encoder", "text-encoder, clip, t5"),
    ("task", lambda: load_task("smss"), "sms", "bbc, tweets"),
    ("task", lambda: corpora.load_corpus("subjj"), "subj", "bbc, tweets"),
    ("task", lambda: resolve_task("hedgee"), "hedge", ", image:NAME, glue:NAME, or a path to a .csv/.jsonl file"),
    ("GLUE task", lambda: load_glue_task("rtee", "."), "rte", "cola"),
    ("image task", lambda: load_image_task("mnits"), "mnist", "eurosat"),
    ("archive", lambda: fetch.fetch("all-mpnet-base-v3"), "all-mpnet-base-v2", "all-mpnet-base-v2"),
]


@pytest.mark.parametrize("kind, call, close, listed", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_an_unknown_name_suggests_the_close_one_and_lists_the_rest(kind, call, close, listed):
    with pytest.raises(TaskarithError) as caught:
        call()
    message = str(caught.value)
    assert re.fullmatch(rf"unknown {kind} '[\w.-]+' \(did you mean '{re.escape(close)}'\?\); known: .+", message), message
    assert listed in message and "\n" not in message


def test_a_name_far_from_any_gets_no_hint():
    with pytest.raises(TaskarithError) as caught:
        resolve_paradigm("zzz")
    assert str(caught.value) == "unknown paradigm 'zzz'; known: nonlinear, linear, attention"
