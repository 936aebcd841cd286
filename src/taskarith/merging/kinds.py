"""The kinds of value a merge setting takes, and the check of a value against its kind.

A rule's signature gives each setting its kind as the annotation and its default as a literal
(`density: Density = 0.2`); the registry reads both from the rule's source (signatures.py). A kind is one of
NAMED: any finite number (float), a range of numbers, or a Literal of the values allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, get_args, get_origin

from ..groundwork.arguments import as_number
from ..groundwork.errors import TaskarithError, quote


@dataclass(frozen=True)
class Interval:
    """Where a number must lie: [low, high], or (low, high] where the low end is open."""

    low: float
    high: float
    open_low: bool = False

    def __contains__(self, x: float) -> bool:
        return (self.low < x if self.open_low else self.low <= x) and x <= self.high

    def __str__(self) -> str:
        return f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"


Share = Annotated[float, Interval(0, 1)]  # a fraction, both ends allowed
Density = Annotated[float, Interval(0, 1, open_low=True)]  # the share of entries kept: at least some are
SignMethod = Literal["total", "frequency"]  # TIES's sign election: by the summed values, or by the summed signs
NAMED = {"float": float, "Share": Share, "Density": Density, "SignMethod": SignMethod}


class SettingTypeError(TaskarithError, TypeError):
    """A setting of the wrong type: bad input where it came from a file or the command line, and the TypeError
    that a Python caller expects of a wrong argument."""


def checked(kind: object, where: str, name: str, value: object) -> object:
    """`value` as a setting of `kind` (a number as float), or the error naming `where`, the setting and value."""
    base, *bounds = get_args(kind) if get_origin(kind) is Annotated else (kind,)
    if get_origin(base) is Literal:
        if value not in get_args(base):
            raise TaskarithError(f"{where}: {name} must be one of {', '.join(get_args(base))}, got {quote(value)}")
        return value
    try:
        value = as_number(where, name, value)
    except TypeError as e:  # only the wrong type: a TaskarithError (not finite) is no TypeError
        raise SettingTypeError(str(e)) from None
    for interval in bounds:
        if value not in interval:
            raise TaskarithError(f"{where}: {name} must lie in {interval}, got {quote(value)}")
    return value

