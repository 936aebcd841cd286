"""Tasks from the user's own files: CSV, JSON Lines and JSON arrays, their options, columns and errors."""

from __future__ import annotations

import json

import pytest

from taskarith.data import SplitSpec, load_file_task
from taskarith.groundwork.errors import TaskarithError

from data_fakes import offline_cache


@pytest.fixture(autouse=True)
def cache(request, tmp_path, monkeypatch):
    """Every unit test gets an empty cache, and nothing may download."""
    return offline_cache(request, tmp_path, monkeypatch)


# ---- tasks from files --------------------------------------------------------------------------

def write_rows(path, rows):
    if path.suffix == ".csv":
        lines = ["text,label"] + [f'"{t}",{lab}' for t, lab in rows]
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))


@pytest.fixture(params=[".csv", ".jsonl"])
def labelled_file(request, tmp_path):
    path = tmp_path / f"reviews{request.param}"
    rows = [(f"review number {i}", "good" if i % 3 else "bad") for i in range(60)]
    write_rows(path, rows + [("review number 1", "good")])
    return path


def test_file_task_loads_and_splits(labelled_file):
    task = load_file_task(labelled_file)
    assert task.name == "reviews" and task.class_names == ("bad", "good") and task.templates == ("{}.",)
    assert len(task.train) + len(task.val) + len(task.test) == 60
    assert len(task.test) == 12 and set(task.test.labels) == {0, 1}
    assert load_file_task(labelled_file, split=SplitSpec(seed=4)).test == task.test


def test_file_task_options(labelled_file):
    task = load_file_task(labelled_file, name="mine", templates=["A {} review."],
                          split=SplitSpec(caps={"train": 10}))
    assert task.name == "mine" and task.templates == ("A {} review.",) and len(task.train) == 10


def test_file_task_custom_columns(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"q": f"question {i}", "y": i % 2}) + "\n" for i in range(20)))
    task = load_file_task(path, text_column="q", label_column="y")
    assert task.class_names == ("0", "1")


def test_file_task_from_a_json_array(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"text": f"item {i}", "label": "ab"[i % 2]} for i in range(20)]))
    assert load_file_task(path).class_names == ("a", "b")
    path.write_text(json.dumps([{"text": "x", "label": "a"}, ["not", "an", "object"]]))
    with pytest.raises(TaskarithError, match="record 2: expected a JSON object"):
        load_file_task(path)


def test_file_task_errors(tmp_path):
    with pytest.raises(TaskarithError, match="no such file"):
        load_file_task(tmp_path / "missing.csv")
    bad_type = tmp_path / "data.txt"
    bad_type.write_text("x")
    with pytest.raises(TaskarithError, match="expected .csv, .jsonl or .json"):
        load_file_task(bad_type)
    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("text,category\na,b\n")
    with pytest.raises(TaskarithError, match="no column 'label'; found: 'text', 'category'"):
        load_file_task(no_label)
    one_class = tmp_path / "one.jsonl"
    write_rows(one_class, [(f"t{i}", "same") for i in range(10)])
    with pytest.raises(TaskarithError, match="expected at least 2 classes"):
        load_file_task(one_class)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": 1}\n{oops\n')
    with pytest.raises(TaskarithError, match="line 2: not valid JSON"):
        load_file_task(broken)
    empty_label = tmp_path / "empty.csv"
    empty_label.write_text("text,label\na,x\nb,\n")
    with pytest.raises(TaskarithError, match="line 3: label"):
        load_file_task(empty_label)


def test_file_task_rejects_bad_templates(labelled_file):
    with pytest.raises(TaskarithError, match="exactly one"):
        load_file_task(labelled_file, templates=["no slot"])
    with pytest.raises(TaskarithError, match="non-empty list"):
        load_file_task(labelled_file, templates="{}.")


def test_tiny_file_task_reports_the_empty_split(tmp_path):
    path = tmp_path / "tiny.csv"
    write_rows(path, [("a", "x"), ("b", "y"), ("c", "x"), ("d", "y")])
    with pytest.raises(TaskarithError, match="tiny: the val split is empty"):
        load_file_task(path)

