"""User tasks from a small labelled CSV or JSON(L) file, split by the same protocol as the built-in tasks."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import TaskarithError, clip, quote
from ..safety import check_name, parse_json, read_text
from .text_cleanup import dedupe, tidy
from .registry import TaskData, make_task

CSV_SUFFIXES = (".csv",)
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _label_string(path: Path, where: str, value: object) -> str:
    if isinstance(value, (str, int, float, bool)) and str(value).strip():
        return str(value).strip()
    raise TaskarithError(f"{path} {where}: label {quote(value)} is empty or not a string or number")


def _text_string(path: Path, where: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TaskarithError(f"{path} {where}: text {quote(value)} is not a string")
    return value


def _missing_column(path: Path, column: str, found: Sequence[str]) -> TaskarithError:
    listed = clip(", ".join(map(quote, found))) or "none"
    return TaskarithError(f"{path}: no column {quote(column)}; found: {listed}")


def _read_csv(path: Path, content: str, text_column: str, label_column: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(io.StringIO(content))
    found = reader.fieldnames or []
    for column in (text_column, label_column):
        if column not in found:
            raise _missing_column(path, column, found)
    # line_num counts physical lines read so far, so a row's message names its last line.
    try:
        return [(_text_string(path, f"line {reader.line_num}", row[text_column]),
                 _label_string(path, f"line {reader.line_num}", row[label_column]))
                for row in reader]
    except csv.Error as e:  # a field over the csv module's size limit, a NUL byte
        raise TaskarithError(f"{path} line {reader.line_num}: not valid CSV ({clip(str(e))})") from None


def _json_records(path: Path, content: str) -> list[tuple[str, object]]:
    """(where, record) pairs from a JSON array of objects or from JSON lines."""
    if content.lstrip().startswith("["):
        records = parse_json(content, str(path))
        return [(f"record {n}", record) for n, record in enumerate(records, 1)]
    return [(f"line {n}", parse_json(raw, str(path), line=n))
            for n, raw in enumerate(content.splitlines(), 1) if raw.strip()]


def _read_json(path: Path, content: str, text_column: str, label_column: str) -> list[tuple[str, str]]:
    rows = []
    for where, record in _json_records(path, content):
        if not isinstance(record, dict):
            raise TaskarithError(f"{path} {where}: expected a JSON object, got {type(record).__name__}")
        for column in (text_column, label_column):
            if column not in record:
                raise _missing_column(path, column, list(record))
        rows.append((_text_string(path, where, record[text_column]),
                     _label_string(path, where, record[label_column])))
    return rows


def read_labelled(path: str | os.PathLike, text_column: str = "text",
                  label_column: str = "label") -> tuple[list[str], list[str]]:
    """(texts, label strings) from a CSV with a header row, JSON lines, or a JSON array of objects,
    cleaned like the built-in corpora."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSON_SUFFIXES:
        raise TaskarithError(f"{path}: unsupported file type {suffix or '(none)'!r}; expected .csv, .jsonl or .json")
    # line ends translated as text mode would: CR LF and CR become LF
    content = read_text(path, encoding="utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    read = _read_csv if suffix in CSV_SUFFIXES else _read_json
    rows = read(path, content, text_column, label_column)
    return dedupe([tidy(text) for text, _ in rows], [label for _, label in rows])


def _check_label_spellings(path: Path, labels: Sequence[str]) -> None:
    """Refuse two spellings of one number ("1" and "1.0"): each would silently become a class of its own."""
    spelled: dict[float, str] = {}
    for label in sorted(set(labels)):
        try:
            value = float(label)
        except ValueError:
            continue
        if value in spelled:
            raise TaskarithError(f"{path}: labels {quote(spelled[value])} and {quote(label)} spell the same number; "
                                 f"write every label of a class the same way")
        spelled[value] = label


def _check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    if isinstance(templates, str) or not templates:
        raise TaskarithError(f"templates = {templates!r}: expected a non-empty list of strings")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise TaskarithError(f"template {template!r}: expected a string with exactly one '{{}}'")
    return tuple(templates)


def load_file_task(path: str | os.PathLike, *, name: str | None = None, text_column: str = "text",
                   label_column: str = "label", templates: Sequence[str] | None = None, seed: int = 0,
                   test_fraction: float = 0.2, val_fraction: float = 0.1, val_cap: int | None = 1000,
                   caps: dict[str, int] | None = None) -> TaskData:
    """A task from a labelled file: class names are the sorted distinct label strings, and the default
    prompt is the bare class name ("{}.")."""
    # the name becomes a folder of the run: a file's stem must be a plain name too
    name = name if name is not None else check_name(Path(path).stem, f"{path}: task name (the file's stem)")
    templates = _check_templates(("{}.",) if templates is None else templates)
    texts, label_strings = read_labelled(path, text_column, label_column)
    _check_label_spellings(Path(path), label_strings)
    class_names = tuple(sorted(set(label_strings)))
    if len(class_names) < 2:
        raise TaskarithError(
            f"{path}: found {len(class_names)} distinct label(s) {quote(list(class_names))} in column "
            f"{label_column!r}; expected at least 2 classes"
        )
    index = {c: i for i, c in enumerate(class_names)}
    return make_task(name, class_names, templates, texts, [index[s] for s in label_strings],
                     seed=seed, test_fraction=test_fraction, val_fraction=val_fraction, val_cap=val_cap,
                     caps=caps)
