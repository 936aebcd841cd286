"""Checks of a public function's arguments, on entry and before any work: a wrong type is a TypeError, a bad
value a TaskarithError, each naming the function and the parameter.

`where` is the function as a caller knows it (merge, TaskVector.cosine); `name` the parameter."""

from __future__ import annotations

import inspect
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import TaskarithError, quote

T = TypeVar("T")
Schema = TypeVar("Schema", bound=BaseModel)


def _type_name(value: object) -> str:
    return type(value).__name__


def require(where: str, name: str, value: T, types: type | tuple[type, ...], expected: str) -> T:
    """`value` if it is one of `types`; a bool only where bool is named (True is an int in Python)."""
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise TypeError(f"{where}: {name} must be {expected}, not {_type_name(value)}")
    return value


def as_path(where: str, name: str, value: Any) -> Path:
    """A file or folder named by a str or os.PathLike (bytes are not a path here), not empty."""
    require(where, name, value, (str, os.PathLike), "a path (str or os.PathLike)")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"{where}: {name} must be a path (str or os.PathLike), not a bytes path")
    if not text:
        raise TaskarithError(f"{where}: {name} is an empty path")
    return Path(text)


def require_sequence(where: str, name: str, value: Any, expected: str) -> Sequence:
    """A list, tuple or other sequence; a str is refused, not read as a list of its characters."""
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        raise TypeError(f"{where}: {name} must be a list of {expected}, not {_type_name(value)}")
    return value


def as_list(where: str, name: str, value: Any, item: Callable[[str, str, Any], T], expected: str) -> list[T]:
    """A sequence checked item by item."""
    require_sequence(where, name, value, expected)
    return [item(where, f"{name}[{i}]", v) for i, v in enumerate(value)]


def as_real(where: str, name: str, value: Any) -> float:
    """A real number (not a bool), Inf and NaN included."""
    require(where, name, value, numbers.Real, "a number")
    try:
        return float(value)
    except OverflowError:  # an int beyond any float
        raise TaskarithError(f"{where}: {name} must be a finite number, got {quote(value)}") from None


def as_number(where: str, name: str, value: Any) -> float:
    """A finite real number (not a bool)."""
    number = as_real(where, name, value)
    if not math.isfinite(number):
        raise TaskarithError(f"{where}: {name} must be a finite number, got {quote(value)}")
    return number


def as_int(where: str, name: str, value: Any) -> int:
    return int(require(where, name, value, numbers.Integral, "an int"))


def as_str(where: str, name: str, value: Any) -> str:
    return require(where, name, value, str, "a str")


def optional(check: Callable[[str, str, Any], T]) -> Callable[[str, str, Any], T | None]:
    """`check` that also lets None through."""
    return lambda where, name, value: None if value is None else check(where, name, value)


def keywords(where: str, given: Mapping[str, Any], function: Callable) -> None:
    """Refuse a keyword `function` does not take, as Python would, but naming `where` (the caller's entry)."""
    taken = inspect.signature(function).parameters
    unknown = sorted(k for k in given if k not in taken or taken[k].kind is inspect.Parameter.POSITIONAL_ONLY)
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {quote(unknown[0])}")


def validated(schema: type[Schema], tree: dict, where: str, drop: int = 0) -> Schema:
    """`tree` as a pydantic model, keyword arguments its keys: an unknown keyword or a wrong type is a
    TypeError, a bad value a TaskarithError. `drop` leading parts of an error's key are not the caller's
    (the section a keyword lands in)."""
    try:
        return schema.model_validate(tree)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(map(str, err["loc"][drop:])) or "arguments"
        if err["type"] == "extra_forbidden":
            raise TypeError(f"{where}() got an unexpected keyword argument {quote(key)}") from None
        if err["type"].endswith("_type") or err["type"] == "is_instance_of":
            raise TypeError(f"{where}: {key}: {err['msg']}, not {_type_name(err.get('input'))}") from None
        raise TaskarithError(f"{where}: {key}: {err['msg']} (got {quote(err.get('input'))})") from None
