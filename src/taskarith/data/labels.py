"""What may be a class label in a user's task file: each label becomes a class name, so a missing value or a
second spelling of one class must be refused, never turned into a class of its own."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ..groundwork.errors import TaskarithError, quote

# spellings of a missing value that exporters write where a label was absent
_MISSING = {"null"}


def _is_missing(text: str) -> bool:
    """"NaN", "inf", "null": a missing value or a number no class is named by."""
    if text.lower() in _MISSING:
        return True
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def label_string(path: Path, where: str, value: object) -> str:
    """The class name a file's label value stands for, or one line naming the file, the line and the value."""
    def refuse(why: str) -> TaskarithError:
        return TaskarithError(f"{path} {where}: label {quote(value)} {why}")

    if isinstance(value, bool):  # JSON true/false: "True" would never match a CSV's "true"
        raise refuse("is a boolean; write the classes as strings or integers")
    if isinstance(value, float) and not math.isfinite(value):
        raise refuse("is NaN or infinite; every row needs a class")
    if not isinstance(value, (str, int, float)) or not str(value).strip():
        raise refuse("is empty or not a string or number")
    text = str(value).strip()
    if _is_missing(text):
        raise refuse("spells a missing value or a non-finite number; every row needs a class")
    return text


def check_label_spellings(path: Path, labels: Sequence[str]) -> None:
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
