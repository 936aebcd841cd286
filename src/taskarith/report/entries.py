"""results.json's entries as the report reads them: checked once when loaded, copied with every string escaped
for where it goes, and each read noted, so that an entry the report cannot use is named in the error."""

from __future__ import annotations

import math
from typing import Any, Callable

from ..groundwork.errors import TaskarithError, clip
from .escape import figure_text, markdown_text

MAX_DEPTH = 32  # results.json nests about ten levels; deeper is not a record of a run


def entry_name(keys: tuple) -> str:
    return clip(".".join(map(str, keys)) or "the top level")


def check_values(results: dict, path: object) -> None:
    """Refuse NaN and infinities (results.json is written without them, so one is an edit) and nesting deeper
    than MAX_DEPTH, naming the entry; a loop, not recursion, so any depth the parser accepted is walked."""
    stack: list[tuple[tuple, Any]] = [((), results)]
    while stack:
        keys, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise TaskarithError(f"{path}: entry {entry_name(keys)}: {value} is not a finite number")
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            if len(keys) == MAX_DEPTH:
                raise TaskarithError(f"{path}: entry {entry_name(keys)}: nested deeper than {MAX_DEPTH} levels")
            stack.append(((*keys, key), child))


class Entry(dict):
    """A JSON object of results.json that notes in its Reading the path of each key read."""

    __slots__ = ("path", "reading")
    path: tuple
    reading: Reading

    def __getitem__(self, key):
        self.reading.last = (*self.path, key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.reading.last = (*self.path, key)
        return super().get(key, default)


class Reading:
    """One report's reading of results.json: the copy its Markdown is written from, the copies its figures are
    drawn from, and the entry read last."""

    def __init__(self) -> None:
        self.last: tuple = ()
        self._originals: dict[str, str] = {}  # escaped for Markdown → the text in the file

    def for_markdown(self, results: dict) -> Entry:
        return self._copy(results, (), self._markdown)

    def for_figures(self, value: Any) -> Any:
        """A part of the Markdown copy with each string escaped for a figure instead."""
        keys = value.path if isinstance(value, Entry) else ()
        return self._copy(value, keys, lambda text: figure_text(self._originals.get(text, text)))

    def original(self, text: object) -> object:
        """The file's own text of a string escaped for Markdown."""
        return self._originals.get(text, text) if isinstance(text, str) else text

    def where(self) -> str:
        """The entry read last, in the file's own words."""
        return entry_name(tuple(map(self.original, self.last)))

    def _markdown(self, text: str) -> str:
        escaped = markdown_text(text)
        self._originals[escaped] = text
        return escaped

    def _copy(self, value: Any, keys: tuple, escape: Callable[[str], str]) -> Any:
        if isinstance(value, str):
            return escape(value)
        if isinstance(value, list):
            return [self._copy(v, keys, escape) for v in value]
        if not isinstance(value, dict):
            return value
        entry = Entry()
        entry.path, entry.reading = keys, self
        for key, child in value.items():
            entry[escape(key)] = self._copy(child, (*keys, key), escape)
        return entry
