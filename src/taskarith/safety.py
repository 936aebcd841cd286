"""Guards for names that become path parts and for files read as input."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from .errors import TaskarithError, quote

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
