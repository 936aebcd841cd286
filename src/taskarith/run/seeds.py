"""Which seeds a run trains: a count from 0, or a range, so that one seed study can be spread over runs
(sessions, machines) and pooled afterwards (`taskarith results pool`)."""

from __future__ import annotations

import re
from typing import Sequence

from ..config import MAX_SEEDS
from ..groundwork.errors import TaskarithError, quote

FIRST_SEED = 0  # negation and the analyses run on this seed only, in the run that holds it


def parse_seeds(text: str) -> list[int]:
    """`N` is seeds 0 to N-1; `A-B` is seeds A to B, both included."""
    found = re.fullmatch(r"(\d+)(?:-(\d+))?", text.strip())
    if not found:
        raise TaskarithError(f"--seeds {quote(text)}: expected a count N or a range A-B, e.g. 8 or 3-7")
    if found.group(2) is None:
        count = _bounded(found.group(1))
        if not 1 <= count <= MAX_SEEDS:
            digits = found.group(1)  # digits only: safe to echo, clipped when long
            shown = digits if len(digits) <= 12 else digits[:12] + "…"
            raise TaskarithError(f"--seeds must lie in [1, {MAX_SEEDS}], got {shown}")
        return list(range(count))
    first, last = _bounded(found.group(1)), _bounded(found.group(2))
    if first > last or last >= MAX_SEEDS:
        raise TaskarithError(f"--seeds {quote(text)}: expected A <= B < {MAX_SEEDS}")
    return list(range(first, last + 1))


def _bounded(digits: str) -> int:
    """The number, or one past any seed where it has too many digits to be one (no huge-int parsing)."""
    return int(digits) if len(digits) <= 6 else MAX_SEEDS + 1


def seed_indices(seeds: int | Sequence[int] | None, default: int) -> list[int]:
    """The run's seed indices, sorted: a count means seeds 0 to count-1; None means the config's count."""
    if seeds is None:
        seeds = default
    if isinstance(seeds, bool):
        raise TaskarithError(f"seeds = {seeds!r}: expected a count or a list of seed indices")
    if isinstance(seeds, int):
        if not 1 <= seeds <= MAX_SEEDS:
            raise TaskarithError(f"seeds must lie in [1, {MAX_SEEDS}], got {seeds}")
        return list(range(seeds))
    indices = sorted(set(seeds))
    if not indices or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < MAX_SEEDS for s in indices):
        raise TaskarithError(f"seeds: expected seed indices in [0, {MAX_SEEDS}), got {list(seeds)[:5]!r}")
    return indices
