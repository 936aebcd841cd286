"""Text from results.json made harmless where the report puts it: one escape per destination.

Each escape leaves names made of letters, digits and `.+-/:, ` (and `_` inside a word) as they are, so the
schema's keys and the registry's names still look up the same entries after escaping.
"""

from __future__ import annotations

import re

from ..groundwork.errors import printable

# Markdown and HTML metacharacters; `$` opens math where Markdown renders it
_MARKDOWN = re.compile(r"[\\`*_\[\]|~#$<>&]")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _markdown_char(match: re.Match) -> str:
    char, text, at = match.group(), match.string, match.start()
    # `_` between two letters or digits can neither open nor close emphasis
    if char == "_" and 0 < at < len(text) - 1 and text[at - 1].isalnum() and text[at + 1].isalnum():
        return char
    return _ENTITIES.get(char) or "\\" + char


def markdown_text(text: str) -> str:
    """`text` as Markdown that shows it literally: no link, emphasis, table cell break, HTML or math, and each
    control character as its escape. A literal backslash is doubled first, so the escape is one to one."""
    return printable(_MARKDOWN.sub(_markdown_char, text))


def figure_text(text: str) -> str:
    """`text` as matplotlib draws it literally: control characters as escapes, `$` not opening math."""
    return printable(text).replace("$", r"\$")
