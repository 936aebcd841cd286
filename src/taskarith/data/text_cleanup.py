"""Clean-up shared by the embedded corpora and user task files: whitespace, duplicates with conflicting
labels, mojibake, BBC title lines and sentence splitting."""

from __future__ import annotations

import re
from collections.abc import Sequence


def tidy(text: str) -> str:
    """Collapse whitespace runs (newlines included) to single spaces and strip the ends."""
    return " ".join(text.split())


def dedupe(texts: Sequence[str], labels: Sequence) -> tuple[list[str], list]:
    """Drop empty texts, keep the first copy of a text repeated with one label, and drop every copy of a
    text seen with two different labels (its label is unreliable). Order of first occurrence is kept."""
    seen: dict[str, object] = {}
    conflicted: set[str] = set()
    for text, label in zip(texts, labels):
        if not text:
            continue
        if text in seen and seen[text] != label:
            conflicted.add(text)
        seen.setdefault(text, label)
    kept = [(t, lab) for t, lab in seen.items() if t not in conflicted]
    return [t for t, _ in kept], [lab for _, lab in kept]


def join_title(title: str, body: str) -> str:
    """BBC files start with a title line without a full stop; end it so the title reads as a sentence."""
    title = title.strip()
    if title and title[-1] not in ".!?":
        title += "."
    return f"{title} {body.strip()}".strip()


# Runs of U+FFFD from undecodable bytes, with the stray non-ASCII characters and underscores that the
# same mangled quote or emoji left around them.
_MOJIBAKE = re.compile(r"(?:[^\x00-\x7f]|_)*\ufffd(?:[^\x00-\x7f]|_)*")


def strip_mojibake(text: str) -> str:
    return _MOJIBAKE.sub(" ", text)


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
# A piece ending in one of these is an abbreviation or an initial, not a sentence end.
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Det|Lt|Sgt|Capt|Gen|Col|Rev|Gov|Sen|vs|No|[A-Z])\.|^\d{1,2}\.)$"
)


def split_sentences(text: str) -> list[str]:
    """Split at ., ! or ? followed by space and a capital or digit, except after abbreviations and initials."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(text.strip()):
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        elif piece.strip():
            sentences.append(piece)
    return [s.strip() for s in sentences if s.strip()]
