"""User tasks from a small labelled CSV or JSON(L) file, split by the same protocol as the built-in tasks."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..groundwork.errors import TaskarithError, clip, quote
from ..groundwork.safety import check_name, parse_json, read_text
from .labels import check_label_spellings, label_string
from .text_cleanup import dedupe, tidy
from .registry import TaskData, make_task
from .split_spec import SplitSpec

CSV_SUFFIXES = (".csv",)
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _text_string(path: Path, where: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TaskarithError(f"{path} {where}: text {quote(value)} is not a string")
    return value


def _missing_column(path: Path, column: str, found: Sequence[str]) -> TaskarithError:
    listed = clip(", ".join(map(quote, found))) or "none"
    return TaskarithError(f"{path}: no column {quote(column)}; found: {listed}")


def _csv_records(path: Path, content: str) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of each CSV record, blank lines skipped; a quote left open or a stray
    character after a closing quote is refused, naming the line the record starts on."""
    # strict: an open quote would otherwise swallow the rest of the file into one text
    reader = csv.reader(io.StringIO(content), strict=True)
    first = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # a field over the csv module's size limit, a quote left open
            why = "a quote opened here is never closed" if "unexpected end of data" in str(e) else clip(str(e))
            raise TaskarithError(f"{path} line {first}: not valid CSV ({why})") from None
        if fields:
            yield first, reader.line_num, fields
        first = reader.line_num + 1


def _read_csv(path: Path, content: str, text_column: str, label_column: str) -> list[tuple[str, str]]:
    records = _csv_records(path, content)
    header_line, _, header = next(records, (1, 1, []))
    for column in (text_column, label_column):
        if column not in header:
            raise _missing_column(path, column, header)
        if header.count(column) > 1:
            raise TaskarithError(f"{path} line {header_line}: column {quote(column)} appears twice; which one "
                                 f"counts would be a guess")
    text_at, label_at = header.index(text_column), header.index(label_column)
    rows = []
    # a row's message names its last line, where its label usually is
    for _, last, fields in records:
        if len(fields) != len(header):
            raise TaskarithError(f"{path} line {last}: {len(fields)} field(s), but the header has {len(header)} "
                                 f"(is a comma in a text not quoted?)")
        rows.append((fields[text_at], label_string(path, f"line {last}", fields[label_at])))
    return rows


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
                     label_string(path, where, record[label_column])))
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
    _refuse_nul(path, content)
    read = _read_csv if suffix in CSV_SUFFIXES else _read_json
    rows = read(path, content, text_column, label_column)
    texts = [tidy(text) for text, _ in rows]
    if not rows:
        raise TaskarithError(f"{path}: holds no labelled rows")
    if not any(texts):
        raise TaskarithError(f"{path}: every text in column {quote(text_column)} is empty or only whitespace")
    return dedupe(texts, [label for _, label in rows])


def _refuse_nul(path: Path, content: str) -> None:
    """A NUL byte means a binary file or a damaged one: its rows cannot be trusted to be what was written."""
    at = content.find("\0")
    if at >= 0:
        line = content.count("\n", 0, at) + 1
        raise TaskarithError(f"{path} line {line}: holds a NUL byte; expected a text file")


def _check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    if isinstance(templates, str) or not templates:
        raise TaskarithError(f"templates = {templates!r}: expected a non-empty list of strings")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise TaskarithError(f"template {template!r}: expected a string with exactly one '{{}}'")
    return tuple(templates)


def load_file_task(path: str | os.PathLike, *, name: str | None = None, text_column: str = "text",
                   label_column: str = "label", templates: Sequence[str] | None = None,
                   split: SplitSpec = SplitSpec()) -> TaskData:
    """A task from a labelled file: class names are the sorted distinct label strings, and the default
    prompt is the bare class name ("{}.")."""
    # the name becomes a folder of the run: a file's stem must be a plain name too
    name = name if name is not None else check_name(Path(path).stem, f"{path}: task name (the file's stem)")
    templates = _check_templates(("{}.",) if templates is None else templates)
    texts, label_strings = read_labelled(path, text_column, label_column)
    check_label_spellings(Path(path), label_strings)
    class_names = tuple(sorted(set(label_strings)))
    if len(class_names) < 2:
        raise TaskarithError(
            f"{path}: found {len(class_names)} distinct label(s) {quote(list(class_names))} in column "
            f"{label_column!r}; expected at least 2 classes"
        )
    index = {c: i for i, c in enumerate(class_names)}
    return make_task(name, class_names, templates, texts, [index[s] for s in label_strings], split=split)
