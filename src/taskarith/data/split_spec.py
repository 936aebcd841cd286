"""The split protocol's settings, checked once where they are made: every task loader takes one SplitSpec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..groundwork.errors import TaskarithError

SPLITS = ("train", "val", "test")


def _check_fraction(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise TaskarithError(f"{what} = {value!r}: expected a number strictly between 0 and 1")


def _check_count(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TaskarithError(f"{what} = {value!r}: expected a whole number >= 1")


@dataclass(frozen=True)
class SplitSpec:
    """How a task's corpus is split (see data.registry): `seed` picks the capped training subset only;
    `caps` (by split, None for no cap) holds every split, read-only."""

    seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    val_cap: int | None = 1000
    caps: Mapping[str, int | None] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise TaskarithError(f"seed = {self.seed!r}: expected a whole number >= 0")
        _check_fraction("test_fraction", self.test_fraction)
        _check_fraction("val_fraction", self.val_fraction)
        if self.val_cap is not None:
            _check_count("val_cap", self.val_cap)
        caps = dict(self.caps or {})
        unknown = sorted(set(caps) - set(SPLITS))
        if unknown:
            raise TaskarithError(f"caps key {unknown[0]!r}: expected one of {', '.join(SPLITS)}")
        for part, cap in caps.items():
            if cap is not None:
                _check_count(f"caps[{part!r}]", cap)
        object.__setattr__(self, "caps", MappingProxyType({part: caps.get(part) for part in SPLITS}))
