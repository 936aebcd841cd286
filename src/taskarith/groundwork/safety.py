"""Guards for names that become path parts and for files read as input."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from .errors import TaskarithError, clip, quote

# no separator, no space or control character, and no leading dot or dash: never ".", "..", a hidden file or an option
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
PLAIN_NAME_RULE = "letters, digits, '.', '_', '+' or '-', starting with a letter or digit, at most 100 characters"


def is_plain_name(name: object) -> bool:
    return isinstance(name, str) and _PLAIN_NAME.fullmatch(name) is not None


def check_name(name: str, what: str) -> str:
    """`name` if it is safe as one path part, else a one-line error naming `what` it is."""
    if not is_plain_name(name):
        raise TaskarithError(f"{what} {quote(name)} is not a plain name; use {PLAIN_NAME_RULE}")
    return name


_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _require_regular(st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "a special file")
        raise OSError(errno.EINVAL, f"{kind}, not a regular file")


def require_regular(path: str | os.PathLike) -> None:
    """Raise OSError unless `path` is a regular file (after links), without opening it: opening a FIFO waits
    for a writer, and reading a device never ends."""
    _require_regular(os.stat(path))


def read_regular(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file; anything else raises OSError before it is opened."""
    path = Path(path)
    require_regular(path)
    # O_NONBLOCK: a file swapped for a FIFO after the stat must not block the open either
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        _require_regular(os.fstat(fd))
        return f.read()


def read_text(path: str | os.PathLike, *, missing: str = "no such file", encoding: str = "utf-8") -> str:
    """The decoded text of a regular file, or a one-line TaskarithError naming it: `missing` when it does not
    exist, "cannot read (why)" or "not UTF-8 text (byte N)"."""
    try:
        return read_regular(path).decode(encoding)
    except FileNotFoundError:
        raise TaskarithError(f"{path}: {missing}") from None
    except UnicodeDecodeError as e:
        raise TaskarithError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise TaskarithError(f"{path}: cannot read ({e.strerror})") from None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are all different: with a key twice, which value counts would be a guess."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def parse_json(text: str, where: str, *, line: int | None = None, problem: str = "not valid JSON") -> Any:
    """json.loads refusing a key given twice, or a one-line TaskarithError: "WHERE: PROBLEM at line L column C
    (why)"; with `line`, the line of a JSON-lines file that `text` is, "WHERE line N: PROBLEM at column C (why)"."""
    if line is not None:
        where = f"{where} line {line}"
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        raise TaskarithError(f"{where}: {problem} (key {quote(e.args[0])} appears twice)") from None
    except json.JSONDecodeError as e:
        at = f"column {e.colno}" if line is not None else f"line {e.lineno} column {e.colno}"
        raise TaskarithError(f"{where}: {problem} at {at} ({e.msg})") from None
    except RecursionError:  # the parser recurses once per nesting level
        raise TaskarithError(f"{where}: {problem} (nested too deeply)") from None
    except ValueError as e:  # an integer of over 4,300 digits
        raise TaskarithError(f"{where}: {problem} ({clip(str(e))})") from None
