"""The one error type for bad user input; the CLI turns it into a one-line message and exit code 2.

Also the helpers that keep text from a user's file harmless in a message or on the terminal."""

import difflib
import reprlib
from typing import Iterable

QUOTE_LIMIT = 200  # characters of user input a message may quote
MESSAGE_LIMIT = 1000  # characters of a whole message on the terminal, whatever a library put in it


class TaskarithError(Exception):
    """A user-facing error: the message names the file, key or value at fault and what was expected."""


# reprlib shortens while it walks, so a huge or deeply nested value costs little to quote
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = QUOTE_LIMIT
_repr.maxlevel = 3


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def quote(value: object) -> str:
    """repr() of user input for a message, at most QUOTE_LIMIT characters."""
    return clip(_repr.repr(value))


def printable(text: object) -> str:
    """`text` with each non-printable character written as its escape (\\x1b, \\n, \\u202e), so text from a file
    cannot move the cursor, recolour the terminal or fake an output line."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(message: str) -> str:
    """A message as one printable line of bounded length: line breaks become spaces, other controls escapes."""
    return clip(" ".join(printable(line) for line in message.splitlines()), MESSAGE_LIMIT)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (a library's may run to pages), or its type's name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def unknown(kind: str, name: object, known: Iterable[str], also: str = "") -> TaskarithError:
    """The error for a name not in a registry: 'unknown KIND NAME; known: …', with a close match suggested."""
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=1) if isinstance(name, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return TaskarithError(f"unknown {kind} {quote(name)}{hint}; known: {', '.join(known)}{also}")
